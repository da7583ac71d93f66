"""Fresh chains: initialize, then run a sampler — unconditional or one class per row."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .init import uniform_init


def fresh_chains(
    energy,
    sampler: Callable,
    n: int,
    shape: tuple[int, ...],
    *,
    y: Tensor | None = None,
    init: Callable = uniform_init,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``n`` samples from new chains started at ``init`` (U(−1, 1) by default).

    With ``y`` (shape (n,)) the chains follow the class-conditional energy E(x, y) = −f(x)[y].
    """
    x0 = init(n, tuple(shape), y=y, generator=generator, device=device)
    return sampler(energy, x0, y=y, generator=generator)
