"""JEM as an exponential tilt of a fitted base density: p(x) = N(x) e^{−E(x)} / Z, Z = E_N[e^{−E}].

The classifier still gives p(y|x) = softmax f(x) and E(x) = −logsumexp f(x); the base N (the training images'
Gaussian, ``sampling.gaussian.RidgedGaussian``) carries what a Gaussian can say about pixels, and the energy
only has to say what it cannot. Exponential tilting of a tractable base: Xiao, Yan & Amit (2021, "Exponential
tilting of generative models"); the residual energy on a normalized base of Deng et al. (2020).

Maximum likelihood: ∇θ −log p(x) = ∇θE(x) − E_p[∇θE], and E_p[g] = E_N[e^{−E} g] / E_N[e^{−E}] is estimated by
self-normalized importance sampling from the base (x'_i ~ N, w = softmax_i(−E(x'_i)), no gradient through w):
    L_px = mean E(x_data) − Σ_i w_i E(x'_i)   (+ α · [mean E(x_data)² + Σ_i w_i E(x'_i)²])
Exact draws from the base replace MCMC chains: no sampler, no buffer, and the same draws estimate log Z
(``evaluation.likelihood``: AIS from the base, whose normalizer is known). The estimate is good while the
weights' effective sample size 1/Σw² (logged as ``ess``) stays a fair fraction of the draws.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..energy import ClassifierEnergy
from .energy_oe import outlier_term
from .output import LossOutput, classification_stats


def tilted_likelihood_term(e_data: Tensor, e_base: Tensor, energy_l2: float = 0.0) -> tuple[Tensor, dict]:
    """(loss, stats) of the importance-sampled log p(x) term from energies of data (B,) and base draws (M,)."""
    w = torch.softmax(-e_base.detach().float(), 0).to(e_base.dtype)
    e_model = (w * e_base).sum()
    gap = e_data.mean() - e_model
    loss = gap + energy_l2 * (e_data.pow(2).mean() + (w * e_base.pow(2)).sum()) if energy_l2 > 0 else gap
    stats = {"e_data": e_data.mean().detach(), "e_sample": e_model.detach(), "gap": gap.detach(),
             "ess": 1.0 / w.float().pow(2).sum().detach()}
    return loss, stats


def jem_tilted(
    energy: ClassifierEnergy,
    x: Tensor,
    y: Tensor,
    x_base: Tensor,
    *,
    pyx_weight: float = 1.0,
    px_weight: float = 1.0,
    energy_l2: float = 0.0,
    x_unlabeled: Tensor | None = None,
    x_out: Tensor | None = None,
    oe_weight: float = 0.1,
    m_in: float = -25.0,
    m_out: float = -7.0,
) -> LossOutput:
    """w_y·CE(f(x), y) + w_x·L_px with L_px from ``tilted_likelihood_term`` on draws ``x_base`` of the base.
    One forward pass of the labelled batch serves CE and E(x); semi-supervised, E(x_data) is taken on
    ``x_unlabeled`` (as ``jem_hybrid`` does). With outliers ``x_out``, + ``oe_weight``·(hinge_in + hinge_out)
    of Liu et al. (2020) on the tilt's energy, as ``jem_hybrid`` adds it: log p(x) = log N(x) − E(x) − log Z, so
    raising E on outliers lowers their density below what the Gaussian alone gives them."""
    logits = energy.logits(x)
    ce = F.cross_entropy(logits, y)
    e_data = energy.energy_from_logits(logits) if x_unlabeled is None else energy(x_unlabeled)
    px, px_stats = tilted_likelihood_term(e_data, energy(x_base), energy_l2)
    stats = classification_stats(logits, y, ce)
    stats.update(px_stats)
    loss = pyx_weight * ce + px_weight * px
    if x_out is not None:
        oe, oe_stats = outlier_term(energy, energy.energy_from_logits(logits), x_out, oe_weight, m_in, m_out)
        loss = loss + oe
        stats.update(oe_stats)
    return LossOutput(loss, stats)
