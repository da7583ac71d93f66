"""Persistent replay buffer for PCD-style training (Du & Mordatch 2019; JEM 2020).

Each draw takes random slots, replaces a ``reinit`` fraction of the drawn chains with fresh
initial points (JEM: 5%), and ``push`` writes the advanced chains back into the same slots.
A class-conditional buffer is split into ``num_classes`` equal segments (segment c holds
chains for class c), as JEM's p(x|y) variant needs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .init import INITS, Init, uniform_init


@dataclass
class Draw:
    """Starting points drawn from the buffer, where they came from, and which were re-initialized."""

    x: Tensor  # (B, *shape)
    index: Tensor  # (B,) slots in the buffer
    y: Tensor | None  # (B,) classes, for a conditional buffer
    reinit: Tensor  # (B,) bool


class ReplayBuffer:
    def __init__(
        self,
        size: int,
        shape: tuple[int, ...],
        *,
        reinit: float = 0.05,
        num_classes: int | None = None,
        init: Init | str = uniform_init,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ):
        if size <= 0:
            raise ValueError(f"buffer size must be > 0, got {size}")
        if not 0.0 <= reinit <= 1.0:
            raise ValueError(f"reinit fraction must be in [0, 1], got {reinit}")
        if num_classes is not None and (num_classes <= 0 or size % num_classes):
            raise ValueError(f"a conditional buffer's size ({size}) must be a positive multiple of num_classes ({num_classes})")
        self.init = INITS[init] if isinstance(init, str) else init
        self.shape = tuple(shape)
        self.reinit = float(reinit)
        self.num_classes = num_classes
        self.device = torch.device(device)
        labels = None
        if num_classes is not None:
            labels = torch.arange(num_classes, device=self.device).repeat_interleave(size // num_classes)
        self.labels = labels  # (size,) class of each slot, or None
        self.x = self.init(size, self.shape, y=labels, generator=generator, device=self.device)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def segment(self) -> int:
        return len(self) // (self.num_classes or 1)

    def sample(self, batch: int, y: Tensor | None = None, generator: torch.Generator | None = None) -> Draw:
        """Draw ``batch`` chains (for classes ``y`` if the buffer is conditional)."""
        if self.num_classes is None:
            if y is not None:
                raise ValueError("y given but the buffer is unconditional (num_classes=None)")
            index = torch.randint(0, len(self), (batch,), generator=generator, device=self.device)
        else:
            if y is None:
                y = torch.randint(0, self.num_classes, (batch,), generator=generator, device=self.device)
            offset = torch.randint(0, self.segment, (batch,), generator=generator, device=self.device)
            index = y.to(self.device) * self.segment + offset
        x = self.x[index]
        mask = torch.rand(batch, generator=generator, device=self.device) < self.reinit
        fresh = self.init(batch, self.shape, y=y, generator=generator, device=self.device, dtype=x.dtype)
        x = torch.where(mask.view(-1, *[1] * len(self.shape)), fresh, x)
        return Draw(x=x, index=index, y=y, reinit=mask)

    def push(self, x: Tensor, index: Tensor) -> None:
        """Write advanced chains back to the slots they were drawn from."""
        self.x[index] = x.detach().to(self.x.dtype)

    def state_dict(self) -> dict:
        return {"x": self.x.clone(), "reinit": self.reinit, "num_classes": self.num_classes}

    def load_state_dict(self, state: dict) -> None:
        x = state["x"]
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"buffer state has chain shape {tuple(x.shape[1:])}, expected {self.shape}")
        if state.get("num_classes") != self.num_classes:
            raise ValueError(f"buffer state has num_classes={state.get('num_classes')}, expected {self.num_classes}")
        self.x = x.to(self.device).clone()
        self.reinit = float(state["reinit"])
        if self.num_classes is not None:
            self.labels = torch.arange(self.num_classes, device=self.device).repeat_interleave(len(self) // self.num_classes)
