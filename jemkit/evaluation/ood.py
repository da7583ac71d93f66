"""Out-of-distribution detection: scores, their AUROC, AUPR and FPR at 95% TPR, and the ``ood`` suite.

In-distribution is the positive class. Scores, higher = more in-distribution:
  logp     = −E(x) = T_model · logsumexp_y f(x)[y] / T_model   (log p(x) up to log Z; JEM)
             (a tilted model, p(x) ∝ N(x) e^{−E(x)}: log N(x) − E(x), and gradnorm of that density too)
  maxprob  = max_y p(y|x)                                      (Hendrycks & Gimpel 2017)
  gradnorm = −‖∇ₓ log p(x)‖₂ = −‖∇ₓ E(x)‖₂                       (JEM's "approximate mass")
  energy   = T · logsumexp_y f(x)[y] / T                       (Liu et al. 2020, T = ``temperature``;
             equals logp when T and the model's temperature are both 1, Liu et al.'s choice)
The verdict ``ood_best``: per OOD set, the score with the highest AUROC, and the mean of those AUROCs.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc, binary_average_precision, binary_roc
from tqdm.auto import tqdm

from ..data import ood_sets
from ..energy import ClassifierEnergy
from ..utils import frozen
from .context import EvalContext
from .gaussian import RidgedGaussian, density_base

SCORES = ("logp", "maxprob", "gradnorm", "energy")


def ood_scores(energy: ClassifierEnergy, x: Tensor, batch_size: int = 250, temperature: float = 1.0,
               base: RidgedGaussian | None = None) -> dict[str, Tensor]:
    """Every score for every row of ``x``: name → (N,) on CPU. With ``base`` (a tilted model's Gaussian) the
    density's own scores (logp, gradnorm) include log N(x)."""
    out: dict[str, list[Tensor]] = {k: [] for k in SCORES}
    with frozen(energy), torch.enable_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].detach().requires_grad_(True)
            logits = energy.logits(xb)
            e = energy.energy_from_logits(logits)
            if base is not None:
                e = e - base.log_density(xb.float())
            (g,) = torch.autograd.grad(e.sum(), xb)
            out["logp"].append((-e).detach().cpu())
            out["maxprob"].append(logits.detach().softmax(1).max(1).values.cpu())
            out["gradnorm"].append(-g.flatten(1).norm(dim=1).cpu())
            out["energy"].append((temperature * torch.logsumexp(logits.detach() / temperature, 1)).cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def _labelled(score_in: Tensor, score_out: Tensor) -> tuple[Tensor, Tensor]:
    preds = torch.cat([score_in, score_out]).double()
    target = torch.cat([torch.ones(len(score_in)), torch.zeros(len(score_out))]).long()
    return preds, target


def auroc(score_in: Tensor, score_out: Tensor) -> float:
    """Area under the ROC curve separating in-distribution (positive) from OOD (negative)."""
    return binary_auroc(*_labelled(score_in, score_out)).item()


def auroc_standard_error(a: float, n_in: int, n_out: int) -> float:
    """Standard error of an AUROC ``a`` from ``n_in`` positives and ``n_out`` negatives (Hanley & McNeil 1982, eq. 2):
    SE² = [A(1−A) + (n_in−1)(Q1−A²) + (n_out−1)(Q2−A²)] / (n_in·n_out), Q1 = A/(2−A), Q2 = 2A²/(1+A)."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"an AUROC's standard error needs both sets non-empty, got {n_in} and {n_out} images")
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_in - 1) * (q1 - a * a) + (n_out - 1) * (q2 - a * a)) / (n_in * n_out)
    return max(var, 0.0) ** 0.5


def aupr(score_in: Tensor, score_out: Tensor) -> float:
    """Area under the precision-recall curve with in-distribution as positive ("AUPR-In", average precision)."""
    return binary_average_precision(*_labelled(score_in, score_out)).item()


def fpr_at_tpr(score_in: Tensor, score_out: Tensor, tpr: float = 0.95) -> float:
    """Fraction of OOD examples accepted when the threshold keeps ``tpr`` of in-distribution ones (lower is better)."""
    fpr, tprs, _ = binary_roc(*_labelled(score_in, score_out))
    return fpr[tprs >= tpr].min().item()


def ood_metrics(score_in: Tensor, score_out: Tensor) -> dict[str, float]:
    return {"auroc": auroc(score_in, score_out), "aupr": aupr(score_in, score_out), "fpr95": fpr_at_tpr(score_in, score_out)}


def best_scores(auroc_by_set: dict[str, dict[str, float]]) -> dict:
    """{set: {"score": the score with the highest AUROC (ties: first in SCORES order), "auroc": it}, ...,
    "mean": mean over sets of that AUROC}; non-finite AUROCs are never best (a set with none: both None)."""
    if "mean" in auroc_by_set:
        raise ValueError("an OOD set may not be named 'mean': ood_best.mean is the mean over sets")
    best: dict = {}
    for name, by_score in auroc_by_set.items():
        finite = {s: a for s, a in by_score.items() if a is not None and math.isfinite(a)}
        score = max(finite, key=finite.get) if finite else None
        best[name] = {"score": score, "auroc": finite.get(score)}
    found = [b["auroc"] for b in best.values() if b["auroc"] is not None]
    return {**best, "mean": sum(found) / len(found) if found else None}


def plot_histograms(scores_in: dict[str, Tensor], scores_out: dict[str, dict[str, Tensor]], path: str | Path, title: str) -> Path:
    """One row per score, one column per OOD set: in-distribution vs OOD score histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(scores_out)
    fig, axes = plt.subplots(len(SCORES), len(sets), figsize=(2.6 * len(sets), 2.2 * len(SCORES)), squeeze=False)
    for r, score in enumerate(SCORES):
        for c, name in enumerate(sets):
            ax = axes[r][c]
            a, b = scores_in[score].numpy(), scores_out[name][score].numpy()
            lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
            bins = torch.linspace(float(lo), float(hi) + 1e-6, 31).numpy()
            ax.hist(a, bins=bins, alpha=0.6, density=True, label="test (in)")
            ax.hist(b, bins=bins, alpha=0.6, density=True, label=name)
            ax.set_title(f"{score} · {name}", fontsize=8)
            ax.tick_params(labelsize=6)
            if r == 0 and c == 0:
                ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def suite_ood(ctx: EvalContext) -> dict:
    """AUROC (``ood``), AUPR-In (``ood_aupr``) and FPR at 95% TPR (``ood_fpr95``) per OOD set and score,
    the test set against each of ``ood_sets`` (the user's ``ctx.ood_extra`` included), and the best score
    per set (``ood_best``), and the number of images of each (``ood_sizes``: "test" and every set, what an AUROC's
    standard error needs); writes ``{prefix}ood_histograms.png``."""
    gen = torch.Generator().manual_seed(ctx.seed)  # the same OOD sets for model and baseline
    n = min(ctx.n_ood, 200) if ctx.quick else ctx.n_ood
    sets = ood_sets(ctx.data, n, generator=gen, extra=ctx.ood_extra)
    base = density_base(ctx)
    scores_in = ood_scores(ctx.energy, ctx.data.x_test[:n], temperature=ctx.ood_temperature, base=base)
    scores_out, result = {}, {"ood": {}, "ood_aupr": {}, "ood_fpr95": {}}
    for name, x in tqdm(sets.items(), desc=f"ood ({ctx.label})", disable=not ctx.progress, leave=False):
        scores_out[name] = ood_scores(ctx.energy, x, temperature=ctx.ood_temperature, base=base)
        for s in scores_in:
            m = ood_metrics(scores_in[s], scores_out[name][s])
            for key, metric in (("ood", "auroc"), ("ood_aupr", "aupr"), ("ood_fpr95", "fpr95")):
                result[key].setdefault(name, {})[s] = m[metric]
    plot_histograms(scores_in, scores_out, ctx.out_dir / f"{ctx.prefix}ood_histograms.png", f"{ctx.label}: OOD scores")
    sizes = {"test": len(ctx.data.x_test[:n]), **{name: len(x) for name, x in sets.items()}}
    return {**result, "ood_best": best_scores(result["ood"]), "ood_sizes": sizes, "ood_energy_temperature": ctx.ood_temperature}
