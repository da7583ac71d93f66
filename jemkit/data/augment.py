"""Training-time data augmentation (``data.augment``): label-preserving transforms of each training batch,
drawn by the batch stream's generator so that a resumed run draws the same ones.

Kinds:
- ``mirror``: a left-right flip of each image with probability 1/2;
- ``shift``: a translation of each image by up to ``data.shift`` pixels in each direction, the image padded by
  reflection first (the random crop of padded images of the JEM code's CIFAR-10 training, padding 4).

Not to be confused with ``train.negatives`` (``negatives.py``), whose transforms make images that are *not*
samples of the data (upside down, turned, jigsaws).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config.schema import AUGMENT_KINDS


def parse_augment(text: str) -> list[str]:
    """``"mirror+shift"`` → ["mirror", "shift"]; "" → []; unknown or repeated kinds are refused."""
    kinds = [k.strip() for k in text.split("+")] if text.strip() else []
    if not all(kinds) or len(set(kinds)) != len(kinds) or not set(kinds) <= set(AUGMENT_KINDS):
        raise ValueError(f"augment must be kinds joined by + from {', '.join(AUGMENT_KINDS)} (each once), got '{text}'")
    return kinds


def shift_images(x: Tensor, dy: Tensor, dx: Tensor, pad: int) -> Tensor:
    """Images ``x`` (N, C, H, W) translated by (dy, dx) pixels each (integers in [−pad, pad]): the crop at offset
    (pad + dy, pad + dx) of ``x`` padded by ``pad`` pixels of reflection on every side."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = (pad + dy).view(n, 1) + torch.arange(h, device=x.device)  # (N, H)
    cols = (pad + dx).view(n, 1) + torch.arange(w, device=x.device)  # (N, W)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows.unsqueeze(2), cols.unsqueeze(1)].permute(0, 3, 1, 2).contiguous()


def augment_batch(x: Tensor, kinds: list[str], shift: int, generator: torch.Generator) -> Tensor:
    """``x`` (N, C, H, W) with each of ``kinds`` applied to every image (mirror: with probability 1/2; shift: by
    offsets uniform in [−shift, shift]), the random draws made on the CPU by ``generator``."""
    if x.dim() != 4:
        raise ValueError(f"data.augment takes images (N, C, H, W), got shape {tuple(x.shape)}")
    n = len(x)
    if "mirror" in kinds:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device).view(n, 1, 1, 1)
        x = torch.where(flip, x.flip(-1), x)
    if "shift" in kinds and shift > 0:
        if shift >= min(x.shape[-2:]):
            raise ValueError(f"data.shift ({shift}) must be below the image size {tuple(x.shape[-2:])}")
        dy, dx = (torch.randint(-shift, shift + 1, (n,), generator=generator).to(x.device) for _ in range(2))
        x = shift_images(x, dy, dx, shift)
    return x
