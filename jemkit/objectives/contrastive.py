"""Maximum likelihood for EBMs by contrastive estimation (Hinton 2002; Du & Mordatch 2019).

∇θ −log p(x) = ∇θE(x) − E_{x'~pθ}[∇θE(x')], estimated with MCMC samples x' (persistent chains,
or CD-k chains started at the data). The loss whose gradient is that estimate:
    L = mean E(x_data) − mean E(x_sampled)  (+ α · [mean E(x_data)² + mean E(x_sampled)²])
The optional L2 term keeps energies near zero (IGEBM's regularizer).
"""
from __future__ import annotations

from torch import Tensor

from .output import LossOutput


def contrastive_term(e_data: Tensor, e_sample: Tensor, energy_l2: float = 0.0) -> tuple[Tensor, Tensor]:
    """(loss, gap) from per-example energies of data and samples; gap = mean E(x_data) − mean E(x_sampled)."""
    gap = e_data.mean() - e_sample.mean()
    loss = gap + energy_l2 * (e_data.pow(2).mean() + e_sample.pow(2).mean()) if energy_l2 > 0 else gap
    return loss, gap


def contrastive_divergence(energy, x: Tensor, x_sampled: Tensor, *, energy_l2: float = 0.0) -> LossOutput:
    """The unconditional EBM loss: E(x) − E(x_sampled) (+ L2), for any energy callable."""
    e_data, e_sample = energy(x), energy(x_sampled)
    loss, gap = contrastive_term(e_data, e_sample, energy_l2)
    return LossOutput(loss, {"e_data": e_data.mean().detach(), "e_sample": e_sample.mean().detach(), "gap": gap.detach()})
