"""Training objectives as pure functions of (energy, tensors) → LossOutput.

JEM hybrid (Grathwohl et al. 2020, eq. 8 and the official code):
    L = w_y · CE(f(x), y) + w_x · [ E(x_data) − E(x_sampled) ] (+ α · [E(x_data)² + E(x_sampled)²])
The bracket is the maximum-likelihood gradient estimator: ∇θ −log p(x) = ∇θE(x) − E_{x'~p}[∇θE(x')],
with x' from (short-run / persistent) SGLD. The optional L2 term is Du & Mordatch (2019)'s
energy-magnitude regularizer.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..energy import ClassifierEnergy
from .contrastive import contrastive_term
from .output import LossOutput


def _classification_stats(logits: Tensor, y: Tensor, ce: Tensor) -> dict[str, Tensor]:
    return {"ce": ce.detach(), "acc": (logits.argmax(1) == y).float().mean().detach()}


def discriminative(energy: ClassifierEnergy, x: Tensor, y: Tensor) -> LossOutput:
    """The baseline: cross-entropy only, −log p(y|x) with p(y|x) = softmax f(x)."""
    logits = energy.logits(x)
    ce = F.cross_entropy(logits, y)
    return LossOutput(ce, _classification_stats(logits, y, ce))


def jem_hybrid(
    energy: ClassifierEnergy,
    x: Tensor,
    y: Tensor,
    x_sampled: Tensor,
    *,
    pyx_weight: float = 1.0,
    px_weight: float = 1.0,
    energy_l2: float = 0.0,
    x_unlabeled: Tensor | None = None,
) -> LossOutput:
    """JEM: w_y·CE(f(x), y) + w_x·[E(x) − E(x_sampled)] (+ energy_l2·[E(x)² + E(x_sampled)²]).

    One forward pass of the labelled batch serves both the CE term and E(x_data). In
    semi-supervised training, E(x_data) is taken on ``x_unlabeled`` instead (JEM §3: unlabelled
    images still train log p(x)).
    """
    logits = energy.logits(x)  # (B, K)
    ce = F.cross_entropy(logits, y)
    e_data = energy.energy_from_logits(logits) if x_unlabeled is None else energy(x_unlabeled)  # (B,)
    e_sample = energy(x_sampled)  # (B',)
    px, gap = contrastive_term(e_data, e_sample, energy_l2)
    loss = pyx_weight * ce + px_weight * px
    stats = _classification_stats(logits, y, ce)
    stats.update(e_data=e_data.mean().detach(), e_sample=e_sample.mean().detach(), gap=gap.detach())
    return LossOutput(loss, stats)


def joint_contrastive(energy: ClassifierEnergy, x: Tensor, y: Tensor, x_sampled: Tensor) -> LossOutput:
    """JEM's log p(x, y) term: E(x, y) − E(x', y) with x' ~ p(x|y) (the official code's p_x_y_weight)."""
    gap = energy(x, y).mean() - energy(x_sampled, y).mean()
    return LossOutput(gap, {"gap_xy": gap.detach()})
