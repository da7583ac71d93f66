"""In-memory image datasets in jemkit's data space: float32 NCHW in [−1, 1]."""
from __future__ import annotations

from dataclasses import dataclass, field
import torch
from torch import Tensor

from .augment import augment_batch, parse_augment


class DatasetNotFound(FileNotFoundError):
    """The files of a dataset are nowhere jemkit looked; the message says where and how to get them."""


@dataclass
class ImageData:
    name: str
    x_train: Tensor  # (N, C, H, W) float32 in [−1, 1]; 2-D toys: points (N, D)
    y_train: Tensor  # (N,) int64
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    class_names: list[str]
    preprocessing: dict = field(default_factory=dict)
    root: str | None = None  # the user's data.root, where related sets (OOD) are looked for too

    def validate(self) -> "ImageData":
        """Refuse data jemkit cannot train on: empty sets, bad shapes, non-finite pixels, labels out of range."""
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if len(x) == 0:
                raise ValueError(f"{self.name}: the {split} set is empty")
            if x.dim() not in (2, 4) or len(x) != len(y) or x.shape[1:] != self.x_train.shape[1:]:
                raise ValueError(f"{self.name}: {split} data must be images (N, C, H, W) or points (N, D), the same shape in "
                                 f"both splits, with N labels; got {tuple(x.shape)} and {tuple(y.shape)}")
            if not torch.isfinite(x).all():
                raise ValueError(f"{self.name}: {split} images contain NaN or Inf pixels")
            bad = (y < 0) | (y >= self.num_classes)
            if bad.any():
                raise ValueError(f"{self.name}: {int(bad.sum())} {split} labels are out of range [0, {self.num_classes - 1}] "
                                 f"(e.g. {y[bad][0].item()})")
        return self

    @property
    def shape(self) -> tuple[int, ...]:
        """(C, H, W) of images, (D,) of points."""
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> "ImageData":
        return ImageData(
            self.name, self.x_train.to(device), self.y_train.to(device), self.x_test.to(device),
            self.y_test.to(device), self.num_classes, self.class_names, self.preprocessing, self.root,
        )


def labelled_subset(y: Tensor, per_class: int, num_classes: int, seed: int = 0) -> Tensor:
    """Indices of ``per_class`` examples of each class, drawn with a seeded generator (semi-supervised splits)."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(num_classes):
        idx = (y.cpu() == c).nonzero().squeeze(1)
        if len(idx) < per_class:
            raise ValueError(f"labels_per_class={per_class} but class {c} has only {len(idx)} training examples")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(picks).to(y.device)


def uint8_to_unit(x: Tensor) -> Tensor:
    """uint8 pixels 0..255 → float32 in [−1, 1]: x / 255 · 2 − 1."""
    return x.float().div_(255.0).mul_(2).sub_(1)


class BatchStream:
    """Endless shuffled minibatches (drop_last) with optional augmentation (``augment.py``) and N(0, σ²) input
    noise (JEM: σ = 0.03), both drawn by the stream's noise generator.

    Resumable: epoch e is shuffled by a generator seeded with (seed, e), and the position in the
    epoch plus the noise generator's state are the ``state_dict`` — a stream restored from it
    yields exactly the batches the original would have yielded next.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, *, seed: int = 0, input_noise: float = 0.0,
                 augment: str = "", shift: int = 2):
        n = x.shape[0]
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if n < batch_size:
            raise ValueError(f"batch_size {batch_size} is larger than the dataset ({n} examples)")
        self.x, self.y, self.batch_size, self.seed, self.input_noise = x, y, batch_size, seed, input_noise
        self.augment, self.shift = parse_augment(augment), shift
        self.per_epoch = n // batch_size
        self.epoch, self.pos = 0, 0
        self.noise_gen = torch.Generator().manual_seed(seed)
        self._perm: tuple[int, Tensor] | None = None

    def permutation(self) -> Tensor:
        if self._perm is None or self._perm[0] != self.epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._perm = (self.epoch, torch.randperm(self.x.shape[0], generator=g).to(self.x.device))
        return self._perm[1]

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        idx = self.permutation()[self.pos * self.batch_size : (self.pos + 1) * self.batch_size]
        self.pos += 1
        if self.pos == self.per_epoch:
            self.epoch, self.pos = self.epoch + 1, 0
        xb = self.x[idx]
        if self.augment:
            xb = augment_batch(xb, self.augment, self.shift, self.noise_gen)
        if self.input_noise > 0:
            xb = xb + self.input_noise * torch.randn(xb.shape, generator=self.noise_gen).to(xb.device)
        return xb, self.y[idx]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "noise_gen": self.noise_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self.noise_gen.set_state(state["noise_gen"])
