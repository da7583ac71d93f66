"""The benchmark loop: per network, the textbook baseline and each jemkit variant run interleaved
(the order rotates every repetition), untimed warm-up first, medians over repetitions; then the
JSON record and the table."""
from __future__ import annotations

import dataclasses
import os
import platform
import statistics
from dataclasses import asdict, dataclass, field

import torch

from ..memory import rss_mb, steady_host_memory
from ..utils import resolve_device
from .baseline_process import MEMORY_MODES, TextbookProcess
from .contenders import NETS, QUICK_NETS, Jemkit, Settings, Textbook, make_net, parse_variant
from .measure import ceiling_sizes, count_flops, measure, measure_ceilings
from .reference import textbook_energy

STAGES = ("sampler", "iteration")


@dataclass
class BenchOptions:
    nets: list[str] = field(default_factory=lambda: ["fmnist", "wrn-28-2"])
    variants: list[str] = field(default_factory=lambda: ["fp32", "bf16+cl", "compile"])
    batch: int = 64
    steps: int = 20
    reps: int = 5
    warmup: int = 1
    buffer_size: int = 10000
    device: str = "auto"
    quick: bool = False
    progress: bool = True
    baseline_memory: str = "default"  # the textbook's process: glibc as it comes, or jemkit's steady settings

    @classmethod
    def defaults(cls, device: str = "auto", quick: bool = False) -> "BenchOptions":
        """JEM's sizes (batch 64, 20 SGLD steps; WRN-28-10 and CUDA graphs on a GPU), or tiny ones for --quick."""
        cuda = resolve_device(device).type == "cuda"
        o = cls(device=device, quick=quick)
        if cuda:
            o.nets, o.variants = o.nets + ["wrn-28-10"], o.variants + ["graph", "graph+bf16+cl"]
        if quick:
            o.batch, o.steps, o.reps, o.warmup, o.buffer_size = 4, 2, 2, 1, 100
            o.variants = [v for v in o.variants if "compile" not in v]  # compiling takes tens of seconds
        return o


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _summary(samples: list, work: int, flops: int, ceilings: dict, dtype: str) -> dict:
    seconds = _median([s.seconds for s in samples])
    gflop_s = flops / seconds / 1e9
    return {
        "seconds": seconds,
        "seconds_reps": [round(s.seconds, 6) for s in samples],
        "images_steps_per_s": work / seconds,
        "gflop": flops / 1e9,
        "gflop_per_s": gflop_s,
        "ceiling_dtype": dtype,
        "pct_matmul_ceiling": 100 * gflop_s / ceilings[f"matmul_{dtype}"],
        "pct_conv1x1_ceiling": 100 * gflop_s / ceilings[f"conv1x1_{dtype}"],
        "peak_rss_mb": _median([s.peak_rss_mb for s in samples]),
        "rss_rise_mb": _median([s.rss_rise_mb for s in samples]),
        "page_faults": _median([s.page_faults for s in samples]),
        "cuda_peak_mb": _median([s.cuda_peak_mb for s in samples]),
    }


def _flops(make, s: Settings, x0: torch.Tensor, y: torch.Tensor) -> dict[str, int]:
    """FLOPs of one SGLD step × steps, and of one training iteration (its non-sampling part, counted on a
    throwaway copy with 1 SGLD step, + steps − 1 more SGLD steps); eager float32."""
    probe = make(dataclasses.replace(s, steps=1, buffer_size=len(x0)))
    per_step = count_flops(lambda: probe.sample(x0, seed=0))
    iteration = count_flops(lambda: probe.iterate(x0, y))
    return {"sampler": per_step * s.steps, "iteration": iteration + (s.steps - 1) * per_step}


def _energy_check(net, out: torch.Tensor) -> float:
    """Mean float32 energy of samples under the initial network (eval mode)."""
    net.eval()
    with torch.no_grad():
        return textbook_energy(net, out.float().contiguous()).mean().item()


def run_bench(o: BenchOptions) -> dict:
    """Run the benchmark and return its record (see docs: ``meta``, ``ceilings``, ``results``, ``comparisons``)."""
    from tqdm.auto import tqdm

    device = resolve_device(o.device)
    variants = [parse_variant(v) for v in o.variants]
    specs = QUICK_NETS if o.quick else NETS
    unknown = [n for n in o.nets if n not in specs]
    if unknown:
        raise ValueError(f"unknown bench network(s) {unknown}; choose from {sorted(specs)}")
    if o.reps < 1 or o.batch < 1 or o.steps < 1 or o.warmup < 0:
        raise ValueError("bench needs --reps, --batch and --steps >= 1 and --warmup >= 0")
    if o.baseline_memory not in MEMORY_MODES:
        raise ValueError(f"--baseline-memory must be one of {', '.join(MEMORY_MODES)}, got '{o.baseline_memory}'")
    steady = steady_host_memory()  # jemkit's contenders run as jemkit runs them
    s = Settings(batch=o.batch, steps=o.steps, buffer_size=o.buffer_size)
    warmup = max(o.warmup, 1 if any(v.compile or v.cuda_graph for v in variants) else 0)  # compile/capture untimed
    record = {"meta": {**_meta(o, device, warmup), "jemkit_steady_memory": steady}, "ceilings": {}, "results": [], "comparisons": [], "memory": {}}
    ceiling_samples: dict[str, list[float]] = {}
    total = len(o.nets) * (warmup + o.reps) * (1 + len(variants)) * len(STAGES)
    bar = tqdm(total=total, desc="bench", disable=not o.progress, dynamic_ncols=True)
    results = []
    for name in o.nets:
        spec = specs[name]
        net = make_net(spec)
        gen = torch.Generator().manual_seed(1)
        x0 = (torch.rand(o.batch, *spec.shape, generator=gen) * 2 - 1).to(device)
        x_data = (torch.rand(o.batch, *spec.shape, generator=gen) * 2 - 1).to(device)
        y = torch.randint(0, 10, (o.batch,), generator=gen).to(device)
        textbook = TextbookProcess(net, spec, s, device, memory=o.baseline_memory)
        try:
            contenders = [textbook] + [Jemkit(net, spec, s, device, v) for v in variants]
            results += _bench_net(name, o, s, spec, net, contenders, x0, x_data, y, warmup, device, record,
                                  ceiling_samples, bar)
        finally:
            textbook.close()
    bar.close()
    ceilings = {k: _median(v) for k, v in ceiling_samples.items()}
    record["ceilings"] = {**ceilings, "sizes": ceiling_sizes(device, o.quick)}
    for name, stage, c, ss, fl, first, energy, energy_tb in results:
        row = {"net": name, "stage": stage, "contender": c.name,
               **_summary(ss, o.batch * o.steps, fl[stage], ceilings, "bf16" if c.bf16 else "fp32"),
               "first_call_s": first}
        row["first_call_extra_s"] = first - row["seconds"]  # compilation / graph capture (and warm-up) cost
        row["page_faults_per_step"] = row["page_faults"] / o.steps
        if stage == "sampler":
            row["energy_mean"], row["energy_diff_vs_textbook"] = energy, energy - energy_tb
        record["results"].append(row)
    by_key = {(r["net"], r["stage"], r["contender"]): r for r in record["results"]}
    for r in record["results"]:
        if r["contender"] != "textbook":
            base = by_key[(r["net"], r["stage"], "textbook")]
            r["speedup"] = base["seconds"] / r["seconds"]
            record["comparisons"].append({"net": r["net"], "stage": r["stage"], "variant": r["contender"],
                                          "speedup": r["speedup"], "seconds": r["seconds"],
                                          "textbook_seconds": base["seconds"]})
    return record


def _timed(c, stage: str, x: torch.Tensor, y: torch.Tensor, seed: int, device: torch.device, keep: bool = False):
    """One measured call: a sampler call from x, or a training iteration on the batch (x, y).
    Returns (Sample, the sampler's output when ``keep``, else None)."""
    if isinstance(c, TextbookProcess):
        return c.measure(stage, x, y, seed, keep)  # timed in the baseline's own process
    out = {}
    sample = measure((lambda: out.update(x=c.sample(x, seed=seed))) if stage == "sampler" else (lambda: c.iterate(x, y)),
                     device)
    return sample, out.get("x") if keep else None


def _bench_net(name, o: BenchOptions, s: Settings, spec, net, contenders: list, x0, x_data, y, warmup: int,
               device: torch.device, record: dict, ceiling_samples: dict, bar) -> list:
    """One network: FLOP counts, the first calls and the energy check, then the interleaved repetitions."""
    flops_textbook = _flops(lambda st: Textbook(net, spec, st, device), s, x0, y)
    flops_jemkit = _flops(lambda st: Jemkit(net, spec, st, device, parse_variant("fp32")), s, x0, y)
    flops = {c.name: flops_textbook if c.name == "textbook" else flops_jemkit for c in contenders}
    reference = net.to(device)
    energies, first_call = {}, {}
    for c in contenders:  # the first sampler call (compilation, capture) is the equivalence check: same x0 and noise
        sample, x = _timed(c, "sampler", x0, y, 7, device, keep=True)
        first_call[(c.name, "sampler")] = sample.seconds
        energies[c.name] = _energy_check(reference, x)
    samples = {(c.name, st): [] for c in contenders for st in STAGES}
    rss_rounds = []
    for r in range(warmup + o.reps):
        order = contenders[r % len(contenders):] + contenders[: r % len(contenders)]
        for c in order:
            for stage in STAGES:
                sample, _ = _timed(c, stage, x0 if stage == "sampler" else x_data, y, r, device)
                first_call.setdefault((c.name, stage), sample.seconds)
                if r >= warmup:
                    samples[(c.name, stage)].append(sample)
                bar.update(1)
        if r >= warmup:
            for k, v in measure_ceilings(device, o.quick).items():
                ceiling_samples.setdefault(k, []).append(v)
            rss_rounds.append(rss_mb())
    known = None not in rss_rounds
    record["memory"][name] = {"rss_mb_after_each_rep": rss_rounds,
                              "rss_growth_mb": (rss_rounds[-1] - rss_rounds[0]) if known else None,
                              "rss_growth_after_first_rep_mb": (rss_rounds[-1] - rss_rounds[1])
                              if known and len(rss_rounds) > 2 else None}
    return [(name, stage, c, samples[(c.name, stage)], flops[c.name], first_call[(c.name, stage)],
             energies[c.name], energies["textbook"]) for c in contenders for stage in STAGES]


def _meta(o: BenchOptions, device: torch.device, warmup: int) -> dict:
    from .. import __version__

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
                    platform.processor())
    return {**asdict(o), "warmup_used": warmup, "device": str(device), "device_name": name,
            "threads": torch.get_num_threads(), "jemkit": __version__, "torch": torch.__version__,
            "python": platform.python_version(),
            "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32, "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}


def _cpuinfo() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read().splitlines()
    except OSError:
        return []


COLUMNS = [("net", "{}", 10), ("stage", "{}", 9), ("contender", "{}", 14), ("seconds", "{:.4f}", 8),
           ("images_steps_per_s", "{:.0f}", 12), ("gflop_per_s", "{:.1f}", 8), ("pct_matmul_ceiling", "{:.1f}", 6),
           ("pct_conv1x1_ceiling", "{:.1f}", 6), ("peak_rss_mb", "{:.0f}", 7), ("rss_rise_mb", "{:.1f}", 7),
           ("page_faults", "{:.0f}", 8),
           ("speedup", "{:.2f}x", 8)]
HEADERS = {"images_steps_per_s": "img·step/s", "gflop_per_s": "GFLOP/s", "pct_matmul_ceiling": "%mm",
           "pct_conv1x1_ceiling": "%conv", "peak_rss_mb": "peak MB", "rss_rise_mb": "+MB", "page_faults": "faults"}


def format_table(record: dict) -> str:
    """The results as a fixed-width table, ceilings and memory growth underneath."""
    lines = ["  ".join(f"{HEADERS.get(k, k):<{w}}" for k, _, w in COLUMNS)]
    lines.append("-" * len(lines[0]))
    for r in record["results"]:
        cells = []
        for k, fmt, w in COLUMNS:
            v = r.get(k)
            cells.append(f"{'' if v is None else fmt.format(v):<{w}}")
        lines.append("  ".join(cells).rstrip())
    c = record["ceilings"]
    lines.append("ceilings (GFLOP/s): " + ", ".join(f"{k} {v:.1f}" for k, v in c.items() if isinstance(v, float)))
    for net, m in record["memory"].items():
        if m["rss_growth_mb"] is not None:
            after = m.get("rss_growth_after_first_rep_mb")
            lines.append(f"{net}: RSS growth over the timed repetitions {m['rss_growth_mb']:+.1f} MB"
                         + (f" ({after:+.1f} MB after the first)" if after is not None else ""))
    meta = record["meta"]
    lines.append(f"{meta['device_name']} ({meta['device']}, {meta['threads']} threads), batch {meta['batch']}, "
                 f"{meta['steps']} SGLD steps, median of {meta['reps']} reps")
    lines.append(f"textbook: its own process, {meta['baseline_memory']} host memory; jemkit: steady host memory "
                 f"{'on' if meta.get('jemkit_steady_memory') else 'off'}")
    return "\n".join(lines)
