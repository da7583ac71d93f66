"""Annealed Langevin dynamics over a noise-conditional score (Song & Ermon 2019, Algorithm 1).

Same conventions as ``langevin.py``: stateless, ``generator=`` for all randomness, ``callback``
after every step, and no side effects — parameters get no ``.grad`` and the module's train/eval
mode and ``requires_grad`` flags are restored. The score is ``score_fn(x, sigma) -> Tensor like x``
(a score network, or an energy through ``jemkit.objectives.EnergyScore``).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..utils import frozen

Callback = Callable[[dict], None]


def geometric_sigmas(sigma_max: float, sigma_min: float, num: int) -> Tensor:
    """σ_1 > … > σ_L, a geometric sequence from ``sigma_max`` to ``sigma_min`` (NCSN's noise levels)."""
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min} and {sigma_max}")
    if num < 1:
        raise ValueError(f"num_sigmas must be >= 1, got {num}")
    if num == 1:
        return torch.tensor([float(sigma_min)])
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), num))


def annealed_langevin(
    score_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    *,
    sigmas: Tensor,
    steps: int = 100,
    step_scale: float = 2e-5,
    denoise: bool = True,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    eval_mode: bool = True,
) -> Tensor:
    """For each σ_i of ``sigmas`` (σ_1 > … > σ_L), ``steps`` Langevin steps of size α_i = ε·σ_i²/σ_L²
    (ε = ``step_scale``; Song & Ermon 2019, Algorithm 1):

        x ← x + (α_i / 2) · s(x, σ_i) + √α_i · z,   z ~ N(0, I)

    With ``denoise``, one last step x ← x + σ_L² · s(x, σ_L) removes the noise of level σ_L
    (Tweedie's formula; Jolicoeur-Martineau et al. 2020, NCSNv2). ``callback`` gets a dict after
    every step: step (global), sigma_index, sigma, x, score (at x before the step).
    """
    sigmas = torch.as_tensor(sigmas, dtype=x.dtype).to(x.device)
    if sigmas.dim() != 1 or len(sigmas) == 0:
        raise ValueError(f"sigmas must be a non-empty 1-D sequence, got shape {tuple(sigmas.shape)}")
    if not (sigmas > 0).all():
        raise ValueError("every sigma must be > 0")
    if steps < 0 or step_scale <= 0:
        raise ValueError(f"need steps >= 0 and step_scale > 0, got {steps} and {step_scale}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    x = x.detach().clone()
    n, sigma_last, t = x.shape[0], sigmas[-1], 0
    with frozen(score_fn, eval_mode), torch.no_grad():
        for i, sigma in enumerate(sigmas):
            alpha = step_scale * (sigma / sigma_last) ** 2
            level = sigma.expand(n)
            for _ in range(steps):
                s = score_fn(x, level)
                z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = x + 0.5 * alpha * s.detach() + alpha.sqrt() * z
                if callback is not None:
                    callback({"step": t, "sigma_index": i, "sigma": sigma, "x": x, "score": s})
                t += 1
        if denoise:
            x = x + sigma_last**2 * score_fn(x, sigma_last.expand(n)).detach()
    if not torch.isfinite(x).all():  # one host sync per chain, not per step
        raise FloatingPointError(
            f"annealed Langevin produced non-finite samples (step_scale={step_scale}, steps={steps}, sigmas {float(sigmas[0]):.3g}"
            f"..{float(sigma_last):.3g}): the score blew up; lower the step scale (score.sampler_eps)"
        )
    return x
