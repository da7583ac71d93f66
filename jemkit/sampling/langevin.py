"""Langevin samplers over any energy: JEM's SGLD and exact unadjusted Langevin.

Every sampler here has one signature,
``sampler(energy, x, *, steps, step_size, ..., y=None, generator=None, callback=None) -> x``,
is stateless, and leaves no side effects: parameters get no ``.grad``, and the module's
train/eval mode and ``requires_grad`` flags are restored (see ``jemkit.utils.frozen``).
``callback`` (if given) is called after every step with a dict: step, x, energy (before the
step), grad (∇ₓE before the step).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..energy import Energy
from ..utils import frozen

Callback = Callable[[dict], None]


def langevin_chain(
    energy: Energy,
    x: Tensor,
    *,
    steps: int,
    step_size: float,
    noise_std: float,
    y: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    eval_mode: bool = True,
    create_graph: bool = False,
    grad_clip: float = 0.0,
    clamp: tuple[float, float] | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> Tensor:
    """The shared loop: x_{t+1} = x_t − step_size · ∇ₓE(x_t [, y]) + noise_std · ε,  ε ~ N(0, I).

    ``grad_clip > 0`` clips ∇ₓE per coordinate to [−grad_clip, grad_clip] (a proximal, trust-region
    step as in JEM++'s PYLD); ``clamp=(lo, hi)`` projects x into the data range after each step.
    ``autocast_dtype=torch.bfloat16`` runs the energy's forward and input-gradient passes under
    autocast (the chain state x and the update stay float32).
    ``create_graph=True`` keeps the chain differentiable with respect to its input x (second-order
    autograd through every step), for attacks that backpropagate through MCMC purification.
    Parameters still get no gradient.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if step_size < 0 or noise_std < 0:
        raise ValueError(f"step_size and noise must be >= 0, got {step_size} and {noise_std}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if not create_graph:
        x = x.detach().clone()
    elif not x.requires_grad:
        x = x.clone().requires_grad_(True)
    with frozen(energy, eval_mode), torch.enable_grad():
        for t in range(steps):
            if not create_graph:
                x.requires_grad_(True)
            with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                e = energy(x, y)  # (B,)
            (grad,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
            step = grad.clamp(-grad_clip, grad_clip) if grad_clip > 0 else grad
            eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            if create_graph:
                x = x - step_size * step + noise_std * eps
                if clamp is not None:
                    x = x.clamp(*clamp)
            else:
                x = x.detach().sub_(step, alpha=step_size).add_(eps, alpha=noise_std)
                if clamp is not None:
                    x.clamp_(*clamp)
            if callback is not None:
                callback({"step": t, "x": x, "energy": e.detach(), "grad": grad})
    if not torch.isfinite(x.detach()).all():  # one host sync per chain, not per step
        raise FloatingPointError(
            "Langevin chain produced non-finite samples: the energy or its gradient blew up "
            f"(step_size={step_size}, noise={noise_std}, steps={steps})"
        )
    return x


def sgld(
    energy: Energy,
    x: Tensor,
    *,
    steps: int = 20,
    step_size: float = 1.0,
    noise: float = 0.01,
    y: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    eval_mode: bool = True,
    create_graph: bool = False,
    grad_clip: float = 0.0,
    clamp: tuple[float, float] | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> Tensor:
    """JEM's SGLD (Grathwohl et al. 2020, official code): x ← x − step_size·∇ₓE(x) + noise·ε.

    Departure from textbook Langevin: step size and noise are *decoupled*. JEM uses
    step_size = 1 with noise = 0.01, whereas a true Langevin step η would need noise √(2η) ≈ 1.41.
    The chain therefore samples a much colder distribution than p(x); it is a heuristic that
    works for short-run/persistent training, not an asymptotically exact sampler.
    JEM++ (Yang & Ji 2021) variants: ``grad_clip`` (proximal step: ∇ₓE clipped per coordinate)
    and ``clamp=(-1, 1)`` (samples kept in the data range).
    """
    return langevin_chain(
        energy, x, steps=steps, step_size=step_size, noise_std=noise,
        y=y, generator=generator, callback=callback, eval_mode=eval_mode, create_graph=create_graph,
        grad_clip=grad_clip, clamp=clamp, autocast_dtype=autocast_dtype,
    )


def langevin(
    energy: Energy,
    x: Tensor,
    *,
    steps: int = 100,
    step_size: float = 1e-3,
    y: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    eval_mode: bool = True,
    create_graph: bool = False,
    autocast_dtype: torch.dtype | None = None,
) -> Tensor:
    """Exact unadjusted Langevin: x ← x − η ∇ₓE(x) + √(2η) ε, ε ~ N(0, I).

    With η = α/2 this is the lecture's x ← x + (α/2)∇ₓlog p(x) + N(0, α). It converges to
    p(x) ∝ exp(−E(x)) as η → 0 and steps → ∞ (bias O(η)).
    """
    if step_size < 0:
        raise ValueError(f"step_size must be >= 0, got {step_size}")
    return langevin_chain(
        energy, x, steps=steps, step_size=step_size, noise_std=math.sqrt(2.0 * step_size),
        y=y, generator=generator, callback=callback, eval_mode=eval_mode, create_graph=create_graph,
        autocast_dtype=autocast_dtype,
    )
