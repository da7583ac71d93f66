"""Training objectives as pure functions of (energy, tensors) → LossOutput.

JEM hybrid (Grathwohl et al. 2020, eq. 8 and the official code):
    L = w_y · CE(f(x), y) + w_x · [ E(x_data) − E(x_sampled) ] (+ α · [E(x_data)² + E(x_sampled)²])
The bracket is the maximum-likelihood gradient estimator: ∇θ −log p(x) = ∇θE(x) − E_{x'~p}[∇θE(x')],
with x' from (short-run / persistent) SGLD. The optional L2 term is Du & Mordatch (2019)'s
energy-magnitude regularizer.

With auxiliary outliers x_out, JEM also takes the energy-bounded outlier-exposure term of Liu et al.
(2020, §3.2; ``energy_oe.py``): + λ · (E[max(0, E(x) − m_in)²] + E[max(0, m_out − E(x_out))²]). The
chains raise the energy where the model's own samples go; the outliers raise it where the chains never
go — far from the data, e.g. on simple images that short-run chains started near the data never reach.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..energy import ClassifierEnergy
from .adversarial import adversarial_ce
from .contrastive import contrastive_term
from .energy_oe import outlier_term
from .output import LossOutput, classification_stats


def discriminative(energy: ClassifierEnergy, x: Tensor, y: Tensor, *, x_adv: Tensor | None = None,
                   clean_weight: float = 0.0) -> LossOutput:
    """The baseline: cross-entropy only, −log p(y|x) with p(y|x) = softmax f(x). With adversarial images
    ``x_adv`` of the batch (adversarial training, ``adversarial.py``) the cross-entropy is theirs, mixed with the
    clean batch's by ``clean_weight`` (the clean forward runs only when that is > 0)."""
    if x_adv is None:
        logits = energy.logits(x)
        ce = F.cross_entropy(logits, y)
        return LossOutput(ce, classification_stats(logits, y, ce))
    logits = energy.logits(x) if clean_weight > 0 else None
    ce, stats = adversarial_ce(energy, x_adv, y, logits, clean_weight)
    return LossOutput(ce, stats)


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
    x_out: Tensor | None = None,
    oe_weight: float = 0.1,
    m_in: float = -25.0,
    m_out: float = -7.0,
    x_adv: Tensor | None = None,
    clean_weight: float = 0.0,
) -> LossOutput:
    """JEM: w_y·CE(f(x), y) + w_x·[E(x) − E(x_sampled)] (+ energy_l2·[E(x)² + E(x_sampled)²]),
    plus ``oe_weight``·(hinge_in + hinge_out) on the labelled batch and the outliers ``x_out`` when given.

    One forward pass of the labelled batch serves both the CE term and E(x_data) (and the in-distribution
    hinge). In semi-supervised training, E(x_data) is taken on ``x_unlabeled`` instead (JEM §3: unlabelled
    images still train log p(x)). With adversarial images ``x_adv`` of the batch the CE term is
    ``adversarial_ce`` (adversarial training of p(y|x)); log p(x) still sees the clean images.
    """
    logits = energy.logits(x)  # (B, K)
    if x_adv is None:
        ce = F.cross_entropy(logits, y)
        stats = classification_stats(logits, y, ce)
    else:
        ce, stats = adversarial_ce(energy, x_adv, y, logits, clean_weight)
    e_data = energy.energy_from_logits(logits) if x_unlabeled is None else energy(x_unlabeled)  # (B,)
    e_sample = energy(x_sampled)  # (B',)
    px, gap = contrastive_term(e_data, e_sample, energy_l2)
    loss = pyx_weight * ce + px_weight * px
    stats.update(e_data=e_data.mean().detach(), e_sample=e_sample.mean().detach(), gap=gap.detach())
    if x_out is not None:
        oe, oe_stats = outlier_term(energy, energy.energy_from_logits(logits), x_out, oe_weight, m_in, m_out)
        loss = loss + oe
        stats.update(oe_stats)
    return LossOutput(loss, stats)


def joint_contrastive(energy: ClassifierEnergy, x: Tensor, y: Tensor, x_sampled: Tensor) -> LossOutput:
    """JEM's log p(x, y) term: E(x, y) − E(x', y) with x' ~ p(x|y) (the official code's p_x_y_weight)."""
    gap = energy(x, y).mean() - energy(x_sampled, y).mean()
    return LossOutput(gap, {"gap_xy": gap.detach()})
