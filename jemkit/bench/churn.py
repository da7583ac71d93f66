"""Host-memory churn of the SGLD sampler in fresh processes: glibc as it comes against steady memory.

``python -m jemkit.bench.churn [--net fmnist] [--rounds 3] [--calls 5]``

Whether a sampling loop page-faults depends on the process's allocator history (see
``jemkit/memory.py``): glibc raises its mmap threshold once a large block is freed, so a process
that happened to free one (a replay buffer built from a temporary, the benchmark's own ceiling
runs) stops faulting, and one that did not keeps mapping fresh pages for every activation. This
check removes the history: every (memory mode, contender) runs in its own new Python process
(no replay buffer, nothing else allocated), one untimed call then ``calls`` timed sampler calls;
the processes of the two modes alternate, round after round, and the table gives medians over all
timed calls. Contenders: the textbook loop, jemkit float32, jemkit bf16 + channels-last.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

import torch

CONTENDERS = ("textbook", "fp32", "bf16+cl")
MODES = ("default", "steady")


def _child(net_name: str, contender: str, mode: str, calls: int) -> list[tuple[float, int]]:
    """In a fresh process: build one contender (no replay buffer) and time its sampler calls."""
    if mode == "steady":
        from ..memory import steady_host_memory

        steady_host_memory()
    from .contenders import NETS, Jemkit, Settings, Textbook, make_net, parse_variant
    from .measure import measure

    spec, device = NETS[net_name], torch.device("cpu")
    s = Settings(batch=64, steps=20, buffer_size=1)
    net = make_net(spec)
    c = Textbook(net, spec, s, device) if contender == "textbook" else Jemkit(net, spec, s, device, parse_variant(contender))
    x0 = torch.rand(64, *spec.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    out = []
    for seed in range(calls + 1):
        sample = measure(lambda: c.sample(x0, seed), device)
        out.append((sample.seconds, sample.page_faults))
    return out[1:]  # the first call is warm-up


def run_churn(net: str = "fmnist", rounds: int = 3, calls: int = 5) -> dict:
    """Every (mode, contender) in its own process, modes alternating; medians of seconds and page faults per call."""
    samples: dict[tuple[str, str], list] = {(m, c): [] for m in MODES for c in CONTENDERS}
    for r in range(rounds):
        modes = MODES if r % 2 == 0 else MODES[::-1]
        for c in CONTENDERS:
            for m in modes:
                cmd = [sys.executable, "-m", "jemkit.bench.churn", "--child", c, m, "--net", net, "--calls", str(calls)]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                samples[(m, c)] += json.loads(done.stdout.strip().splitlines()[-1])
    rows = []
    for c in CONTENDERS:
        for m in MODES:
            seconds = statistics.median(s for s, _ in samples[(m, c)])
            faults = statistics.median(f for _, f in samples[(m, c)])
            rows.append({"contender": c, "memory": m, "seconds": seconds, "page_faults": faults,
                         "seconds_all": [round(s, 4) for s, _ in samples[(m, c)]]})
    return {"net": net, "rounds": rounds, "calls": calls, "threads": torch.get_num_threads(), "rows": rows}


def format_churn(record: dict) -> str:
    lines = [f"{'contender':<10} {'memory':<8} {'seconds':>8} {'faults':>8}  (sampler call, batch 64, 20 steps, "
             f"{record['net']}, medians of {record['rounds']}×{record['calls']} calls, fresh processes)"]
    by = {(r["contender"], r["memory"]): r for r in record["rows"]}
    for r in record["rows"]:
        extra = ""
        if r["memory"] == "steady":
            extra = f"  {by[(r['contender'], 'default')]['seconds'] / r['seconds']:.2f}x faster with steady memory"
        lines.append(f"{r['contender']:<10} {r['memory']:<8} {r['seconds']:>8.3f} {r['page_faults']:>8.0f}{extra}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jemkit.bench.churn", description=__doc__.splitlines()[0])
    p.add_argument("--net", default="fmnist", choices=["fmnist", "wrn-28-2"],
                   help="network, batch 64, 20 SGLD steps (default fmnist)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds; each runs every (memory mode, contender) once in a fresh process (default 3)")
    p.add_argument("--calls", type=int, default=5, help="timed sampler calls per process (after one untimed)")
    p.add_argument("--out", help="write the record as JSON")
    p.add_argument("--child", nargs=2, metavar=("CONTENDER", "MODE"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(_child(a.net, a.child[0], a.child[1], a.calls)))
        return 0
    if a.rounds < 1 or a.calls < 1:
        p.error("--rounds and --calls must be >= 1")
    record = run_churn(a.net, a.rounds, a.calls)
    print(format_churn(record))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
