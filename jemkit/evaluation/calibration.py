"""Calibration of p(y|x): expected calibration error (ECE), temperature scaling, the reliability diagram, and the suite.

ECE = Σ_b (|B_b| / N) · |acc(B_b) − conf(B_b)| over equal-width confidence bins
(20 bins, JEM++'s protocol), computed with torchmetrics.

Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks", §4.2), the standard
post-hoc baseline: p_T(y|x) = softmax(f(x) / T) with the single T > 0 that minimizes the NLL on held-out
data. It leaves the argmax, hence accuracy, unchanged.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.classification import multiclass_calibration_error

from .context import EvalContext


def expected_calibration_error(logits: Tensor, y: Tensor, bins: int = 20) -> float:
    """ECE of softmax(logits) over ``bins`` equal-width confidence bins (L1), through torchmetrics."""
    return multiclass_calibration_error(logits.softmax(1), y, num_classes=logits.shape[1], n_bins=bins, norm="l1").item()


_LOG_T_MAX = math.log(100.0)  # T is kept in [1e-2, 1e2]


def fit_temperature(logits: Tensor, y: Tensor) -> float:
    """argmin_T NLL(softmax(f / T), y) over T in [1e-2, 1e2]: bounded Brent search on log T, float64, deterministic.

    The NLL is convex in 1/T, hence unimodal in log T, so the bounded 1-D search finds its minimizer
    (T → 0 when every fitting example is classified right, T → ∞ when the logits carry no information).
    """
    from scipy.optimize import minimize_scalar

    f, y = logits.detach().double().cpu(), y.cpu()
    if not torch.isfinite(f).all():
        raise ValueError(f"temperature scaling needs finite logits, got {int((~torch.isfinite(f)).sum())} non-finite values")
    nll = lambda log_t: F.cross_entropy(f / math.exp(log_t), y).item()
    found = minimize_scalar(nll, bounds=(-_LOG_T_MAX, _LOG_T_MAX), method="bounded", options={"xatol": 1e-8})
    return math.exp(found.x)


def halves(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded permutation of range(n) cut into (fitting half, evaluation half) index tensors."""
    if n < 2:
        raise ValueError(f"temperature scaling needs at least 2 test images to split into halves, got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2], perm[n // 2 :]


def temperature_scaling(logits: Tensor, y: Tensor, seed: int = 0, bins: int = 20) -> dict[str, float]:
    """Fit T on one seeded half of (logits, y); ECE and NLL before and after scaling on the other half."""
    logits, y = logits.detach().cpu(), y.cpu()
    fit, held = halves(len(y), seed)
    t = fit_temperature(logits[fit], y[fit])
    raw, scaled = logits[held], logits[held] / t
    return {"temperature": t,
            "ece_eval_raw": expected_calibration_error(raw, y[held], bins),
            "ece_eval_scaled": expected_calibration_error(scaled, y[held], bins),
            "nll_eval_raw": F.cross_entropy(raw, y[held]).item(),
            "nll_eval_scaled": F.cross_entropy(scaled, y[held]).item()}


def reliability_bins(logits: Tensor, y: Tensor, bins: int = 20) -> dict[str, list[float]]:
    """Per equal-width confidence bin: mean confidence, accuracy, and count (empty bins → NaN)."""
    conf, pred = logits.softmax(1).max(1)
    correct = (pred == y).float()
    idx = torch.clamp((conf * bins).long(), max=bins - 1)  # bin b holds conf in [b/bins, (b+1)/bins)
    count = torch.bincount(idx, minlength=bins).float()
    acc = torch.bincount(idx, weights=correct, minlength=bins) / count
    mean_conf = torch.bincount(idx, weights=conf, minlength=bins) / count
    return {"confidence": mean_conf.tolist(), "accuracy": acc.tolist(), "count": count.tolist()}


def _draw_bins(ax, rel: dict, title: str) -> None:
    """One reliability panel: accuracy per bin and the gap to confidence (empty bins left blank)."""
    bins = len(rel["count"])
    edges = torch.linspace(0, 1, bins + 1)
    filled = [n > 0 for n in rel["count"]]
    acc = [a if f else 0.0 for a, f in zip(rel["accuracy"], filled)]
    conf = [c if f else 0.0 for c, f in zip(rel["confidence"], filled)]
    ax.bar(edges[:-1], acc, width=1 / bins, align="edge", edgecolor="black", alpha=0.7, label="accuracy")
    ax.bar(edges[:-1], [abs(c - a) for c, a in zip(conf, acc)], bottom=[min(c, a) for c, a in zip(conf, acc)],
           width=1 / bins, align="edge", color="red", alpha=0.35, hatch="//", label="|confidence − accuracy|")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max p(y|x))", ylabel="accuracy", title=title)
    ax.legend(loc="upper left", fontsize=8)


def plot_reliability(panels: list[tuple[dict, str]], path: str | Path, title: str) -> Path:
    """Reliability diagrams side by side, one per (reliability_bins output, panel title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.3), squeeze=False)
    for ax, (rel, panel_title) in zip(axes[0], panels):
        _draw_bins(ax, rel, panel_title)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def suite_calibration(ctx: EvalContext) -> dict:
    """ECE over ``ctx.ece_bins`` bins on the whole test set (raw, ``ece``), and temperature scaling fit on a
    seeded half of it, ECE and NLL before and after on the other half; writes ``{prefix}reliability.png``
    (raw on the test set beside scaled on the evaluation half)."""
    logits, y = ctx.logits.detach().cpu(), ctx.data.y_test.cpu()
    ece = expected_calibration_error(logits, y, ctx.ece_bins)
    scaling = temperature_scaling(logits, y, ctx.seed, ctx.ece_bins)
    _, held = halves(len(y), ctx.seed)
    t = scaling["temperature"]
    panels = [(reliability_bins(logits, y, ctx.ece_bins), f"raw, test set: ECE = {ece:.4f}"),
              (reliability_bins(logits[held] / t, y[held], ctx.ece_bins),
               f"T = {t:.3g}, evaluation half: ECE = {scaling['ece_eval_scaled']:.4f}")]
    plot_reliability(panels, ctx.out_dir / f"{ctx.prefix}reliability.png", f"{ctx.label}: reliability diagram")
    return {"calibration": {"ece": ece, "bins": ctx.ece_bins, **scaling}}
