"""Maximum likelihood for EBMs by contrastive estimation (Hinton 2002; Du & Mordatch 2019).

∇θ −log p(x) = ∇θE(x) − E_{x'~pθ}[∇θE(x')], estimated with MCMC samples x' (persistent chains,
or CD-k chains started at the data). The loss whose gradient is that estimate:
    L = mean E(x_data) − mean E(x_sampled)  (+ α · [mean E(x_data)² + mean E(x_sampled)²])
The optional L2 term keeps energies near zero (IGEBM's regularizer).

``ranked_negatives``: each data image against K negatives made from it (conditional noise-contrastive
estimation, Ceylan & Gutmann 2018, with the negatives as the conditional noise), −log of the image's share of
e^{−E} among itself and its negatives. With one negative it is softplus(E(x) − E(x̃)): the gradient leaves the
pairs already ranked and goes to those that are not, where the contrastive term's weighs every negative alike.
"""
from __future__ import annotations

import torch
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


def ranked_negatives(e_data: Tensor, e_negative: Tensor) -> tuple[Tensor, Tensor]:
    """(loss, accuracy) of ranking each image above its own negatives: e_data (B,), e_negative (K, B) with
    e_negative[k, i] the energy of image i's k-th negative; loss = mean_i [E(x_i) + log(e^{−E(x_i)} +
    Σ_k e^{−E(x̃_ki)})], accuracy = share of images whose energy is below all of their negatives'."""
    if e_negative.dim() != 2 or e_negative.shape[1] != e_data.shape[0]:
        raise ValueError(f"e_negative must be (K, {e_data.shape[0]}), got {tuple(e_negative.shape)}")
    logits = -torch.cat([e_data.unsqueeze(0), e_negative])  # (K + 1, B)
    loss = (torch.logsumexp(logits, 0) - logits[0]).mean()
    accuracy = (e_data < e_negative.min(0).values).float().mean()
    return loss, accuracy
