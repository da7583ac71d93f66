"""What every objective returns."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class LossOutput:
    """A scalar loss to backpropagate and detached statistics for logging (tensors, no host sync)."""

    loss: Tensor
    stats: dict[str, Tensor] = field(default_factory=dict)
