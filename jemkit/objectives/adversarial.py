"""Adversarial training's inner maximization (Madry et al. 2018): projected gradient ascent of the
cross-entropy in an L∞ ball, from a random start,

    δ₀ ~ U(−ε, ε)ᵈ,   δ ← Π_[−ε, ε](δ + a · sign ∇_δ CE(f(x + δ), y)),   x_adv = clip(x + δ, −1, 1).

One step with a = 1.25ε is Wong et al. (2020)'s "fast" FGSM with a random start; k steps default to
a = 2.5ε/k (Madry et al.'s rule). ε and a are in [0, 1] pixel units like the robustness suite's: jemkit's
inputs read [−1, 1], so both are doubled here. The attack is written here, not taken from torchattacks (which the
robustness suite uses to evaluate), so its random start comes from the training generator a checkpoint saves
(a resumed run draws the same starts) and it runs on any device and under bf16 autocast.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..energy import ClassifierEnergy
from .output import classification_stats


def default_step_size(eps: float, steps: int) -> float:
    """1.25ε for one step (Wong et al. 2020), 2.5ε/steps otherwise (Madry et al. 2018)."""
    return 1.25 * eps if steps == 1 else 2.5 * eps / steps


def pgd_linf(energy: ClassifierEnergy, x: Tensor, y: Tensor, *, eps: float, steps: int = 1, step_size: float = 0.0,
             generator: torch.Generator | None = None) -> Tensor:
    """Adversarial images x_adv with ‖x_adv − x‖∞ ≤ 2ε in [−1, 1] (ε in [0, 1] pixel units), detached.

    Only the input gets a gradient (``torch.autograd.grad``): the parameters' ``.grad`` are left alone.
    """
    if eps <= 0 or steps < 1:
        raise ValueError(f"pgd_linf needs eps > 0 and steps >= 1, got eps={eps}, steps={steps}")
    radius, a = 2.0 * eps, 2.0 * (step_size or default_step_size(eps, steps))
    delta = (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * radius
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(energy.logits((x + delta).clamp(-1, 1)).float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + a * grad.sign()).clamp(-radius, radius)
    return (x + delta).clamp(-1, 1).detach()


def adversarial_ce(energy: ClassifierEnergy, x_adv: Tensor, y: Tensor, clean_logits: Tensor | None,
                   clean_weight: float) -> tuple[Tensor, dict[str, Tensor]]:
    """(1 − w)·CE(f(x_adv), y) + w·CE(f(x), y) (w = ``clean_weight``; Goodfellow et al. 2015 mix the two,
    Madry et al. 2018 take w = 0) and its statistics: ``ce`` and ``acc`` of the adversarial batch, ``clean_acc``
    when the clean logits are given."""
    logits_adv = energy.logits(x_adv)
    ce = F.cross_entropy(logits_adv, y)
    stats = classification_stats(logits_adv, y, ce)
    if clean_logits is not None:
        stats["clean_acc"] = (clean_logits.argmax(1) == y).float().mean().detach()
        if clean_weight > 0:
            ce = (1 - clean_weight) * ce + clean_weight * F.cross_entropy(clean_logits, y)
    return ce, stats
