"""The SGLD update, in one place for the eager loop and the CUDA-graph replay:
x ← clamp(x − η·clip(∇ₓE(x)) + σ·z),  z ~ N(0, I)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class StepOptions:
    step_size: float  # η
    noise: float  # σ, the std of the Gaussian added each step
    grad_clip: float  # clip ∇ₓE per coordinate to [−grad_clip, grad_clip] (0: off)
    clamp: tuple[float, float] | None  # project x into [lo, hi] after each step
    autocast_dtype: torch.dtype | None  # the energy's passes under autocast (x and the update stay float32)


def sgld_update_(x: Tensor, grad: Tensor, z: Tensor, o: StepOptions) -> Tensor:
    """In place on x's storage: x ← x − η·clip(∇ₓE) + σ·z, then clamp."""
    step = grad.clamp(-o.grad_clip, o.grad_clip) if o.grad_clip > 0 else grad
    x = x.detach().sub_(step, alpha=o.step_size).add_(z, alpha=o.noise)
    if o.clamp is not None:
        x.clamp_(*o.clamp)
    return x
