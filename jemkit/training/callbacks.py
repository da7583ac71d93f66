"""Hooks into the training loop, called in step order: ``on_step_start`` → (loss) ``on_loss`` →
(guard, backward, optimizer) → ``on_step_end``. The defaults change nothing.

Tests inject faults through them, e.g. a NaN energy (``on_loss`` returns a poisoned output) or a
learning rate blown up for one step (``on_step_start`` scales the optimizer's lr; the schedule
sets the next step's lr afresh). A step rolled back by the guard runs again, hooks included.
"""
from __future__ import annotations

from typing import Callable, Sequence

from torch import Tensor
from torch.optim import Optimizer

from ..objectives import LossOutput


class Callback:
    """Subclass and override the hooks you need."""

    def on_step_start(self, step: int, optimizer: Optimizer) -> None:
        """Before step ``step`` (counted from 1) computes its loss; ``optimizer`` holds this step's lr."""

    def on_loss(self, step: int, out: LossOutput) -> LossOutput:
        """The step's loss output before the divergence guard sees it; return it, or a replacement."""
        return out

    def on_step_end(self, step: int, stats: dict[str, Tensor]) -> None:
        """After a step that the guard let through and the optimizer applied."""


class OnStepEnd(Callback):
    """A plain function ``fn(step, stats)`` called after every applied step (``train(on_step=...)``)."""

    def __init__(self, fn: Callable[[int, dict], None]):
        self.fn = fn

    def on_step_end(self, step: int, stats: dict[str, Tensor]) -> None:
        self.fn(step, stats)


class Callbacks(Callback):
    """Several callbacks called in order (each ``on_loss`` sees the previous one's output)."""

    def __init__(self, callbacks: Sequence[Callback] = ()):
        self.callbacks = list(callbacks)

    def on_step_start(self, step: int, optimizer: Optimizer) -> None:
        for cb in self.callbacks:
            cb.on_step_start(step, optimizer)

    def on_loss(self, step: int, out: LossOutput) -> LossOutput:
        for cb in self.callbacks:
            out = cb.on_loss(step, out)
        return out

    def on_step_end(self, step: int, stats: dict[str, Tensor]) -> None:
        for cb in self.callbacks:
            cb.on_step_end(step, stats)
