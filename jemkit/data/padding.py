"""``data.shape``: give a dataset the image shape C×H×W a model expects (e.g. Fashion-MNIST 1×28×28
as 3×32×32 for a CIFAR preset). Images are padded symmetrically to H×W with the background value
−1 (black; an odd difference puts the extra row/column at the bottom/right) and grayscale is
repeated to C channels. Nothing is shrunk or resampled.
"""
from __future__ import annotations

from dataclasses import replace

import torch.nn.functional as F
from torch import Tensor

from ..config import SHAPE_FORMAT
from .base import ImageData


def parse_shape(text: str) -> tuple[int, int, int]:
    """"3x32x32" → (3, 32, 32); one line for anything else."""
    m = SHAPE_FORMAT.match(text.strip())
    if not m:
        raise ValueError(f"data.shape must look like CxHxW with positive integers (e.g. 3x32x32), got '{text}'")
    return tuple(int(v) for v in m.groups())


def pad_images(x: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """(N, c, h, w) → (N, C, H, W): ⌊(H−h)/2⌋ rows of −1 on top, ⌈(H−h)/2⌉ below (W alike); c = 1 repeated to C."""
    (c, h, w), (C, H, W) = x.shape[1:], shape
    top, left = (H - h) // 2, (W - w) // 2
    x = F.pad(x, (left, W - w - left, top, H - h - top), value=-1.0)
    return x.expand(-1, C, -1, -1).contiguous() if c != C else x


def pad_to_shape(data: ImageData, text: str) -> ImageData:
    """``data`` with every image padded (gray repeated) to ``text`` ("CxHxW"), recorded in ``preprocessing``."""
    shape = parse_shape(text)
    if len(data.shape) != 3:
        raise ValueError(f"data.shape is for images; {data.name} is points of shape {data.shape}")
    (c, h, w), (C, H, W) = data.shape, shape
    if H < h or W < w:
        raise ValueError(f"data.shape={text} would shrink {data.name}'s {c}x{h}x{w} images; "
                         f"it only pads (H >= {h}, W >= {w})")
    if c not in (1, C):
        raise ValueError(f"data.shape={text} asks for C={C} but {data.name}'s images have {c} channels; "
                         "only 1 → C (gray repeated) or C → C")
    note = {"from": f"{c}x{h}x{w}", "padded": f"{h}x{w} → {H}x{W}, symmetric, value -1",
            "channels": f"{c} → {C}" + (" (gray repeated)" if c != C else "")}
    return replace(data, x_train=pad_images(data.x_train, shape), x_test=pad_images(data.x_test, shape),
                   preprocessing={**data.preprocessing, "shape": note})
