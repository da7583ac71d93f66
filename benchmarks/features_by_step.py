"""Linear-probe accuracy of an unconditional EBM's features along training (issue 14, the features promise).

Runs ``jemkit eval CHECKPOINT --suite features`` on every kept checkpoint of each run (train with
``--set train.keep_last=16`` so they stay), skipping those already evaluated under OUT, then writes
OUT/features_by_step.csv and OUT/features_by_step.png: probe accuracy against training steps, one line per run,
and the randomly initialized net's probe as a dashed line (the target: 5 points above it).

usage: python benchmarks/features_by_step.py OUT LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--min-step N]
e.g.   python benchmarks/features_by_step.py runs/feat-curve "one negative=runs/nda1" "four + augment=runs/ebm-nda"
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
from pathlib import Path


def probe(checkpoint: Path, out: Path) -> dict:
    """The features suite's metrics for ``checkpoint``, evaluated into ``out`` unless already there."""
    metrics = out / "metrics.json"
    if not metrics.is_file():
        subprocess.run([sys.executable, "-m", "jemkit", "eval", str(checkpoint), "--suite", "features", "--out", str(out)],
                       check=True, stdout=subprocess.DEVNULL)
    return json.loads(metrics.read_text())["features"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    parser.add_argument("--min-step", type=int, default=1, help="skip checkpoints before this step (default 1: not the initial one)")
    args = parser.parse_args()
    rows = []
    for spec in args.runs:
        label, sep, run = spec.partition("=")
        if not sep:
            parser.error(f"runs are LABEL=RUN_DIR, got '{spec}'")
        checkpoints = sorted(Path(run, "checkpoints").glob("step_*[0-9].safetensors"))
        if not checkpoints:
            parser.error(f"no checkpoints in {run}/checkpoints")
        for ckpt in checkpoints:
            step = int(re.search(r"step_(\d+)", ckpt.name).group(1))
            if step < args.min_step:
                continue
            f = probe(ckpt, args.out / re.sub(r"\W+", "_", label) / ckpt.stem)
            rows.append({"run": label, "step": step, "probe": f["probe_accuracy"], "random_init": f.get("random_init_probe_accuracy")})
            print(f"{label:>24}  step {step:>6}  probe {f['probe_accuracy']:.4f}  random init {f.get('random_init_probe_accuracy')}")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "features_by_step.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["run", "step", "probe", "random_init"])
        writer.writeheader()
        writer.writerows(rows)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label in dict.fromkeys(r["run"] for r in rows):
        mine = [r for r in rows if r["run"] == label]
        ax.plot([r["step"] for r in mine], [r["probe"] for r in mine], marker="o", ms=3, label=label)
    randoms = sorted({r["random_init"] for r in rows if r["random_init"] is not None})
    for value in randoms:
        ax.axhline(value, ls="--", c="gray", lw=1)
        ax.axhline(value + 0.05, ls=":", c="gray", lw=1)
    if randoms:
        ax.plot([], [], ls="--", c="gray", label="random init (dotted: + 5 points)")
    ax.set_xlabel("training step")
    ax.set_ylabel("linear probe test accuracy (100 labels/class)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "features_by_step.png", dpi=130)
    print(f"wrote {args.out / 'features_by_step.csv'} and {args.out / 'features_by_step.png'}")


if __name__ == "__main__":
    main()
