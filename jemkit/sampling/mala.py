"""Metropolis-adjusted Langevin (MALA; Roberts & Tweedie 1996): Langevin proposals with an
accept/reject step, so every transition leaves p(x) ∝ exp(−E(x)) exactly invariant.

Proposal  x' = x − η∇ₓE(x) + √(2η) z,   q(x'|x) = N(x'; x − η∇ₓE(x), 2η I)
Accept    with probability min(1, exp(−E(x') + E(x) + log q(x|x') − log q(x'|x))), per chain.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..energy import Energy
from ..utils import frozen
from .langevin import Callback


def _energy_and_grad(energy: Energy, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
    x = x.detach().requires_grad_(True)
    e = energy(x, y)
    (g,) = torch.autograd.grad(e.sum(), x)
    return e.detach(), g


def _log_q(x_to: Tensor, x_from: Tensor, grad_from: Tensor, step_size: float) -> Tensor:
    """log N(x_to; x_from − η∇E(x_from), 2η I) up to a constant, per chain."""
    d = x_to - x_from + step_size * grad_from
    return -d.flatten(1).pow(2).sum(1) / (4 * step_size)


def mala(
    energy: Energy,
    x: Tensor,
    *,
    steps: int = 100,
    step_size: float = 1e-3,
    y: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    eval_mode: bool = True,
) -> Tensor:
    """MALA chains from ``x``. The callback also gets ``accept``: the fraction of chains that accepted
    the step (its mean over steps is the acceptance rate; aim for about 0.57)."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if step_size <= 0 and steps > 0:
        raise ValueError(f"step_size must be > 0 for MALA, got {step_size}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    x = x.detach().clone()
    noise = math.sqrt(2 * step_size) if steps > 0 else 0.0
    with frozen(energy, eval_mode), torch.enable_grad():
        e, g = _energy_and_grad(energy, x, y) if steps > 0 else (None, None)
        for t in range(steps):
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            prop = x - step_size * g + noise * z
            e_prop, g_prop = _energy_and_grad(energy, prop, y)
            log_alpha = (e - e_prop) + _log_q(x, prop, g_prop, step_size) - _log_q(prop, x, g, step_size)
            u = torch.rand(log_alpha.shape, generator=generator, device=x.device, dtype=x.dtype)
            accept = u.log() < log_alpha  # (B,)
            mask = accept.view(-1, *[1] * (x.dim() - 1))
            x = torch.where(mask, prop, x)
            e, g = torch.where(accept, e_prop, e), torch.where(mask, g_prop, g)
            if callback is not None:
                callback({"step": t, "x": x, "energy": e, "grad": g, "accept": accept.float().mean()})
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"MALA chain produced non-finite samples (step_size={step_size}, steps={steps})")
    return x
