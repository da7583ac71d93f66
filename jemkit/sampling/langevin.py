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
from .compiled import compiled_energy_grad, energy_grad
from .cudagraph import check_graphable, graphed_chain
from .update import StepOptions, sgld_update_

Callback = Callable[[dict], None]


def langevin_chain(
    energy: Energy,
    x: Tensor,
    *,
    steps: int,
    step_size: float,
    noise: float,
    y: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    eval_mode: bool = True,
    create_graph: bool = False,
    grad_clip: float = 0.0,
    clamp: tuple[float, float] | None = None,
    autocast_dtype: torch.dtype | None = None,
    compile: bool = False,
    cuda_graph: bool = False,
) -> Tensor:
    """The shared loop: x_{t+1} = x_t − step_size · ∇ₓE(x_t [, y]) + noise · z,  z ~ N(0, I).

    ``grad_clip > 0`` clips ∇ₓE per coordinate to [−grad_clip, grad_clip] (a proximal, trust-region
    step as in JEM++'s PYLD); ``clamp=(lo, hi)`` projects x into the data range after each step.
    ``autocast_dtype=torch.bfloat16`` runs the energy's forward and input-gradient passes under
    autocast (the chain state x and the update stay float32).
    ``compile=True`` runs the energy-gradient step through ``torch.compile`` (see ``compiled.py``;
    eager fallback with one warning); ``cuda_graph=True`` replays one captured step per SGLD step
    (CUDA only, see ``cudagraph.py``). Both leave the chain's arithmetic and its use of ``generator``
    unchanged, and both apply only without ``create_graph``.
    ``create_graph=True`` keeps the chain differentiable with respect to its input x (second-order
    autograd through every step), for attacks that backpropagate through MCMC purification.
    Parameters still get no gradient. The loop never syncs with the host: the one check for
    non-finite samples runs after the last step.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if step_size < 0 or noise < 0:
        raise ValueError(f"step_size and noise must be >= 0, got {step_size} and {noise}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if cuda_graph:
        check_graphable(energy, x)
    options = StepOptions(step_size, noise, grad_clip, clamp, autocast_dtype)
    grad_fn = compiled_energy_grad if compile and not create_graph else energy_grad
    if not create_graph:
        x = x.detach().clone()
    elif not x.requires_grad:
        x = x.clone().requires_grad_(True)
    with frozen(energy, eval_mode), torch.enable_grad():
        graphed = None
        if cuda_graph and not create_graph and steps > 0:
            graphed = graphed_chain(energy, x, y, steps=steps, options=options, generator=generator,
                                    callback=callback, grad_fn=grad_fn)
        x = graphed if graphed is not None else _loop(energy, x, y, steps, options, generator, callback, create_graph, grad_fn)
    if not torch.isfinite(x.detach()).all():  # one host sync per chain, not per step
        raise FloatingPointError(
            "Langevin chain produced non-finite samples: the energy or its gradient blew up "
            f"(step_size={step_size}, noise={noise}, steps={steps})"
        )
    return x


def _loop(energy, x: Tensor, y: Tensor | None, steps: int, o: StepOptions, generator: torch.Generator | None,
          callback: Callback | None, create_graph: bool, grad_fn) -> Tensor:
    """The eager steps: in place on x without ``create_graph``, a differentiable new x each step with it."""
    for t in range(steps):
        if create_graph:
            e, grad = energy_grad(energy, x, y, o.autocast_dtype, create_graph=True)
            step = grad.clamp(-o.grad_clip, o.grad_clip) if o.grad_clip > 0 else grad
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x - o.step_size * step + o.noise * z
            if o.clamp is not None:
                x = x.clamp(*o.clamp)
        else:
            e, grad = grad_fn(energy, x.requires_grad_(True), y, o.autocast_dtype)
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = sgld_update_(x, grad, z, o)
        if callback is not None:
            callback({"step": t, "x": x, "energy": e, "grad": grad})
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
    compile: bool = False,
    cuda_graph: bool = False,
) -> Tensor:
    """JEM's SGLD (Grathwohl et al. 2020, official code): x ← x − step_size·∇ₓE(x) + noise·z.

    Departure from textbook Langevin: step size and noise are *decoupled*. JEM uses
    step_size = 1 with noise = 0.01, whereas a true Langevin step η would need noise √(2η) ≈ 1.41.
    The chain therefore samples a much colder distribution than p(x); it is a heuristic that
    works for short-run/persistent training, not an asymptotically exact sampler.
    JEM++ (Yang & Ji 2021) variants: ``grad_clip`` (proximal step: ∇ₓE clipped per coordinate)
    and ``clamp=(-1, 1)`` (samples kept in the data range).
    """
    return langevin_chain(
        energy, x, steps=steps, step_size=step_size, noise=noise,
        y=y, generator=generator, callback=callback, eval_mode=eval_mode, create_graph=create_graph,
        grad_clip=grad_clip, clamp=clamp, autocast_dtype=autocast_dtype, compile=compile, cuda_graph=cuda_graph,
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
    compile: bool = False,
    cuda_graph: bool = False,
) -> Tensor:
    """Exact unadjusted Langevin: x ← x − η ∇ₓE(x) + √(2η) z, z ~ N(0, I).

    With η = α/2 this is the lecture's x ← x + (α/2)∇ₓlog p(x) + N(0, α). It converges to
    p(x) ∝ exp(−E(x)) as η → 0 and steps → ∞ (bias O(η)).
    """
    if step_size < 0:
        raise ValueError(f"step_size must be >= 0, got {step_size}")
    return langevin_chain(
        energy, x, steps=steps, step_size=step_size, noise=math.sqrt(2.0 * step_size),
        y=y, generator=generator, callback=callback, eval_mode=eval_mode, create_graph=create_graph,
        autocast_dtype=autocast_dtype, compile=compile, cuda_graph=cuda_graph,
    )
