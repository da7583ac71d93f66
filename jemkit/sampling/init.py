"""Chain initializations: where MCMC chains (fresh or re-initialized buffer slots) start."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Init = Callable[..., Tensor]


def uniform_init(
    n: int,
    shape: tuple[int, ...],
    *,
    y: Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """U(−1, 1) noise of shape (n, *shape), JEM's initialization for buffer and reinit. ``y`` is unused."""
    u = torch.rand((n, *shape), generator=generator, device=device, dtype=dtype)
    return u.mul_(2).sub_(1)


INITS: dict[str, Init] = {"uniform": uniform_init}
