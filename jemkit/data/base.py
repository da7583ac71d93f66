"""In-memory image datasets in jemkit's data space: float32 NCHW in [−1, 1]."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import Tensor


class DatasetNotFound(FileNotFoundError):
    """The files of a dataset are nowhere jemkit looked; the message says where and how to get them."""


@dataclass
class ImageData:
    name: str
    x_train: Tensor  # (N, C, H, W) float32 in [−1, 1]
    y_train: Tensor  # (N,) int64
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    class_names: list[str]
    preprocessing: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> "ImageData":
        return ImageData(
            self.name, self.x_train.to(device), self.y_train.to(device), self.x_test.to(device),
            self.y_test.to(device), self.num_classes, self.class_names, self.preprocessing,
        )


def uint8_to_unit(x: Tensor) -> Tensor:
    """uint8 pixels 0..255 → float32 in [−1, 1]: x / 255 · 2 − 1."""
    return x.float().div_(255.0).mul_(2).sub_(1)


def batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    input_noise: float = 0.0,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless shuffled minibatches (drop_last), with optional N(0, σ²) input noise (JEM: σ = 0.03).

    Shuffling and noise draw from ``generator`` (a CPU generator), so the data order is reproducible.
    """
    n = x.shape[0]
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    if n < batch_size:
        raise ValueError(f"batch_size {batch_size} is larger than the dataset ({n} examples)")
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            idx = perm[i : i + batch_size].to(x.device)
            xb = x[idx]
            if input_noise > 0:
                xb = xb + input_noise * torch.randn(xb.shape, generator=generator).to(xb.device)
            yield xb, y[idx]
