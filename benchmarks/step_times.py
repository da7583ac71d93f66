"""Wall time per training step of the cheaper-JEM levers (issue 16), one process, variants interleaved.

Each repetition trains every variant for ``--steps`` steps from scratch (no evaluation, checkpoint or sample
grid inside the timed window) and takes the seconds that ``metrics.csv`` logged between step 50 and step
``--steps`` − 50, per step; the table gives the median over repetitions and every repetition.

    python benchmarks/step_times.py --threads 2 --reps 3 --steps 300 --out step_times.json
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
from pathlib import Path

import torch

from jemkit.config import apply_overrides, load_preset
from jemkit.training import train

LEVERS = ["train.bf16=true", "train.sample_batch=32", "sampler.steps=3", "train.px_every=2"]
VARIANTS = {  # name: (preset, overrides); the fmnist-jempp rows add one lever at a time
    "fmnist-baseline": ("fmnist-baseline", []),
    "fmnist-baseline + bf16 step + channels-last": ("fmnist-baseline", ["train.bf16=true", "train.channels_last=true"]),
    "fmnist-jempp": ("fmnist-jempp", []),
    "+ bf16 step": ("fmnist-jempp", LEVERS[:1]),
    "+ 32 chains": ("fmnist-jempp", LEVERS[:2]),
    "+ 3 SGLD steps": ("fmnist-jempp", LEVERS[:3]),
    "+ log p(x) every 2nd step": ("fmnist-jempp", LEVERS[:4]),
    "fmnist-jem-fast (+ weight average)": ("fmnist-jem-fast", []),
}
QUIET = ["train.eval_every=100000", "train.log_every=50", "train.sample_every=100000", "train.checkpoint_every=0",
         "train.tensorboard=false"]


def seconds_per_step(run_dir: Path, first: int, last: int) -> float:
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    seconds = {int(r["step"]): float(r["seconds"]) for r in rows if r["seconds"]}
    return (seconds[last] - seconds[first]) / (last - first)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=300, help="steps per run (at least 150; timed from 50 to steps − 50)")
    p.add_argument("--out", help="JSON with every repetition")
    a = p.parse_args()
    if a.steps < 150 or a.steps % 50:
        p.error("--steps must be a multiple of 50, at least 150")
    torch.set_num_threads(a.threads)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.reps):
            for i, (name, (preset, sets)) in enumerate(VARIANTS.items()):
                cfg = apply_overrides(load_preset(preset), [*sets, f"train.steps={a.steps}", *QUIET])
                run = Path(tmp) / f"v{i}"
                train(cfg, run, overwrite=True, progress=False)
                times[name].append(seconds_per_step(run, 50, a.steps - 50))
    base = statistics.median(times["fmnist-baseline"])
    for name, t in times.items():
        m = statistics.median(t)
        print(f"{name:<45} {1000 * m:6.1f} ms/step  {m / base:4.2f}x baseline  {[round(1000 * x, 1) for x in t]}")
    if a.out:
        Path(a.out).write_text(json.dumps({"threads": a.threads, "steps": a.steps, "ms_per_step": {
            k: [1000 * x for x in v] for k, v in times.items()}}, indent=1))


if __name__ == "__main__":
    main()
