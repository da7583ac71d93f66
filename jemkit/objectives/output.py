"""What every objective returns."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class LossOutput:
    """A scalar loss to backpropagate and detached statistics for logging (tensors, no host sync)."""

    loss: Tensor
    stats: dict[str, Tensor] = field(default_factory=dict)


def classification_stats(logits: Tensor, y: Tensor, ce: Tensor) -> dict[str, Tensor]:
    """The cross-entropy and batch accuracy every classifier objective logs (detached)."""
    return {"ce": ce.detach(), "acc": (logits.argmax(1) == y).float().mean().detach()}
