"""Calibration of p(y|x): expected calibration error (ECE), the reliability diagram, and the suite.

ECE = Σ_b (|B_b| / N) · |acc(B_b) − conf(B_b)| over equal-width confidence bins
(20 bins, JEM++'s protocol), computed with torchmetrics.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torchmetrics.functional.classification import multiclass_calibration_error

from .context import EvalContext


def expected_calibration_error(logits: Tensor, y: Tensor, bins: int = 20) -> float:
    return multiclass_calibration_error(logits.softmax(1), y, num_classes=logits.shape[1], n_bins=bins, norm="l1").item()


def reliability_bins(logits: Tensor, y: Tensor, bins: int = 20) -> dict[str, list[float]]:
    """Per equal-width confidence bin: mean confidence, accuracy, and count (empty bins → NaN)."""
    conf, pred = logits.softmax(1).max(1)
    correct = (pred == y).float()
    idx = torch.clamp((conf * bins).long(), max=bins - 1)  # bin b holds conf in [b/bins, (b+1)/bins)
    count = torch.bincount(idx, minlength=bins).float()
    acc = torch.bincount(idx, weights=correct, minlength=bins) / count
    mean_conf = torch.bincount(idx, weights=conf, minlength=bins) / count
    return {"confidence": mean_conf.tolist(), "accuracy": acc.tolist(), "count": count.tolist()}


def plot_reliability(rel: dict, ece: float, path: str | Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = len(rel["count"])
    edges = torch.linspace(0, 1, bins + 1)
    fig, ax = plt.subplots(figsize=(4, 4))
    filled = [n > 0 for n in rel["count"]]  # empty bins are left blank
    acc = [a if f else 0.0 for a, f in zip(rel["accuracy"], filled)]
    conf = [c if f else 0.0 for c, f in zip(rel["confidence"], filled)]
    ax.bar(edges[:-1], acc, width=1 / bins, align="edge", edgecolor="black", alpha=0.7, label="accuracy")
    ax.bar(edges[:-1], [abs(c - a) for c, a in zip(conf, acc)], bottom=[min(c, a) for c, a in zip(conf, acc)],
           width=1 / bins, align="edge", color="red", alpha=0.35, hatch="//", label="|confidence − accuracy|")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max p(y|x))", ylabel="accuracy", title=f"{title}\nECE = {ece:.4f}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def suite_calibration(ctx: EvalContext) -> dict:
    """ECE over ``ctx.ece_bins`` bins on the test set; writes ``{prefix}reliability.png``."""
    ece = expected_calibration_error(ctx.logits, ctx.data.y_test, ctx.ece_bins)
    rel = reliability_bins(ctx.logits, ctx.data.y_test, ctx.ece_bins)
    plot_reliability(rel, ece, ctx.out_dir / f"{ctx.prefix}reliability.png", f"{ctx.label}: reliability diagram")
    return {"calibration": {"ece": ece, "bins": ctx.ece_bins}}
