"""The ``bench`` command's arguments and action, shared by ``jemkit bench`` and ``python -m jemkit.bench``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_arguments(b: argparse.ArgumentParser) -> None:
    b.add_argument("--nets", type=_names, help="comma-separated: fmnist, wrn-28-2, wrn-28-10 "
                                                "(default fmnist,wrn-28-2, plus wrn-28-10 on CUDA)")
    b.add_argument("--variants", type=_names,
                   help="jemkit variants, each fp32 or flags joined by +: bf16, cl (channels-last), compile, graph "
                        "(CUDA graphs); default fp32,bf16+cl,compile (+ graph,graph+bf16+cl on CUDA)")
    b.add_argument("--batch", type=int, help="batch size (default 64)")
    b.add_argument("--steps", type=int, help="SGLD steps (default 20)")
    b.add_argument("--reps", type=int, help="timed repetitions; medians are reported (default 5)")
    b.add_argument("--warmup", type=int, help="untimed repetitions first (default 1; compile and graph variants need 1)")
    b.add_argument("--baseline-memory", choices=["default", "steady"],
                   help="the textbook baseline runs in its own Python process with glibc's malloc as it comes "
                        "(default), or with jemkit's steady host-memory settings (arithmetic-only comparison)")
    b.add_argument("--device", default="auto")
    b.add_argument("--quick", action="store_true", help="tiny networks and sizes, no compile variant (smoke runs, tests)")
    b.add_argument("--out", help="write the results as JSON to this file")
    b.add_argument("--quiet", action="store_true", help="no progress bar")


def run_command(a: argparse.Namespace) -> None:
    from .run import BenchOptions, format_table, run_bench

    o = BenchOptions.defaults(a.device, a.quick)
    for key in ("nets", "variants", "batch", "steps", "reps", "warmup", "baseline_memory"):
        if getattr(a, key) is not None:
            setattr(o, key, getattr(a, key))
    o.progress = not a.quiet
    record = run_bench(o)
    print(format_table(record))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(record, indent=1))
        print(f"results: {a.out}")
