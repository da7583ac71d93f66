"""`jemkit demo`: train a JEM and its discriminative baseline on the embedded digits,
evaluate both, and write a report — the whole pipeline in one call."""
from __future__ import annotations

from pathlib import Path

from .config import load_preset
from .evaluation import evaluate
from .report import write_report
from .training import train

SUMMARY_ROWS = [("accuracy", "accuracy"), ("nll", "NLL"), ("calibration.ece", "ECE (20 bins)")]


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def summary_table(metrics: dict) -> str:
    """A short terminal table, JEM vs baseline: accuracy, NLL, ECE, and OOD AUROC per score (mean over sets)."""
    rows = [(label, _get(metrics, key), _get(metrics.get("baseline", {}), key)) for key, label in SUMMARY_ROWS]
    for score in ("logp", "maxprob", "gradnorm"):
        def mean_auroc(m):
            vals = [s[score] for s in (m or {}).get("ood", {}).values() if score in s]
            return sum(vals) / len(vals) if vals else None
        rows.append((f"OOD AUROC {score} (mean)", mean_auroc(metrics), mean_auroc(metrics.get("baseline"))))
    fmt = lambda v: "—" if v is None else f"{v:.4f}"
    width = max(len(r[0]) for r in rows)
    lines = [f"{'metric':<{width}}  {'JEM':>8}  {'baseline':>8}", "-" * (width + 20)]
    lines += [f"{name:<{width}}  {fmt(a):>8}  {fmt(b):>8}" for name, a, b in rows]
    return "\n".join(lines)


def run_demo(out_dir: str | Path, overrides: list[str] = (), *, overwrite: bool = False, progress: bool = True) -> dict:
    """Train digits-jem and digits-baseline into out_dir/runs/, evaluate into out_dir/, write the report."""
    out_dir = Path(out_dir)
    jem = train(load_preset("digits-jem", overrides), out_dir / "runs" / "jem", overwrite=overwrite, progress=progress)
    base = train(load_preset("digits-baseline", overrides), out_dir / "runs" / "baseline", overwrite=overwrite, progress=progress)
    # no Inception FID on 8×8 digits: meaningless at that size, and minutes of CPU time
    metrics = evaluate(jem.checkpoint, out_dir, baseline=base.checkpoint, inception=False, progress=progress)
    write_report(out_dir)
    return metrics
