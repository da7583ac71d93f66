"""Negative data augmentation (Sinha et al. 2021, "Negative Data Augmentation", ICLR): training images
transformed so that they are no longer samples of the data distribution, used as extra negatives of an energy
model's contrastive term (``train.negatives``). An energy that must rank upright, whole garments above their
rotations and jigsaws has to encode orientation and the arrangement of parts — what the model's own short-run
samples, blurry and easy to tell apart, do not ask of it.

Kinds (one drawn uniformly per image):
- ``rotate``: a turn by 90°, 180° or 270° (square images only);
- ``flip``: upside down;
- ``swap``: the two halves exchanged, top with bottom or left with right (a two-piece jigsaw);
- ``mix``: one half of the image beside the other half of another image of the batch;
- ``jigsaw``: the four quadrants put back in a random order other than their own (even sizes only; the 2×2
  jigsaw of Sinha et al., which includes ``swap``'s exchanges among its 23 orders).
"""
from __future__ import annotations

import itertools

import torch
from torch import Tensor

from ..config.schema import NEGATIVE_KINDS


def parse_negatives(text: str) -> list[str]:
    """``"rotate+flip"`` → ["rotate", "flip"]; unknown or repeated kinds are refused."""
    kinds = [k.strip() for k in text.split("+") if k.strip()]
    unknown = [k for k in kinds if k not in NEGATIVE_KINDS]
    if not kinds or unknown or len(set(kinds)) != len(kinds):
        raise ValueError(f"negatives must be kinds joined by + from {', '.join(NEGATIVE_KINDS)} (each once), got '{text}'")
    return kinds


def _swap(x: Tensor, vertical: Tensor) -> Tensor:
    h, w = x.shape[-2:]
    rows = torch.cat([x[..., h // 2:, :], x[..., : h // 2, :]], -2)
    cols = torch.cat([x[..., w // 2:], x[..., : w // 2]], -1)
    return torch.where(vertical.view(-1, 1, 1, 1), rows, cols)


def _mix(x: Tensor, idx: Tensor, vertical: Tensor, generator: torch.Generator | None) -> Tensor:
    """Images ``x[idx]`` with one half from another image of ``x`` (never themselves)."""
    n, (h, w) = len(x), x.shape[-2:]
    if n < 2:
        raise ValueError("negatives 'mix' needs at least two images in the batch")
    shift = torch.randint(1, n, (len(idx),), generator=generator, device=x.device)
    other, x = x[(idx + shift) % n], x[idx]
    top = torch.arange(h, device=x.device).view(1, 1, h, 1) < h // 2
    left = torch.arange(w, device=x.device).view(1, 1, 1, w) < w // 2
    keep = torch.where(vertical.view(-1, 1, 1, 1), top, left)
    return torch.where(keep, x, other)


# the 23 orders of four quadrants (top-left, top-right, bottom-left, bottom-right) that move at least one
_QUADRANT_ORDERS = torch.tensor([p for p in itertools.permutations(range(4)) if p != (0, 1, 2, 3)])


def _jigsaw(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Images ``x`` with their quadrants reordered, each by one of the 23 non-identity orders."""
    n, c, h, w = x.shape
    order = _QUADRANT_ORDERS.to(x.device)[torch.randint(len(_QUADRANT_ORDERS), (n,), generator=generator, device=x.device)]
    quads = x.reshape(n, c, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5).reshape(n, 4, c, h // 2, w // 2)
    quads = quads[torch.arange(n, device=x.device).unsqueeze(1), order]
    return quads.reshape(n, 2, 2, c, h // 2, w // 2).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


def negative_augment(x: Tensor, kinds: list[str], generator: torch.Generator | None = None) -> Tensor:
    """One negative per image of ``x`` (N, C, H, W), its kind drawn uniformly from ``kinds`` by ``generator``."""
    if x.dim() != 4:
        raise ValueError(f"negative augmentation takes images (N, C, H, W), got shape {tuple(x.shape)}")
    if "rotate" in kinds and x.shape[-1] != x.shape[-2]:
        raise ValueError(f"negatives 'rotate' needs square images, got {x.shape[-2]}×{x.shape[-1]}")
    if "jigsaw" in kinds and (x.shape[-1] % 2 or x.shape[-2] % 2):
        raise ValueError(f"negatives 'jigsaw' needs even image sizes, got {x.shape[-2]}×{x.shape[-1]}")
    n, device = len(x), x.device
    kind = torch.randint(len(kinds), (n,), generator=generator, device=device)
    turns = torch.randint(1, 4, (n,), generator=generator, device=device)
    vertical = torch.rand(n, generator=generator, device=device) < 0.5
    out = x.clone()
    for i, name in enumerate(kinds):
        idx = (kind == i).nonzero().squeeze(1)
        if len(idx) == 0:
            continue
        xs = x[idx]
        if name == "rotate":  # one rot90 call per angle, not per image
            made = xs.clone()
            for k in (1, 2, 3):
                by_k = turns[idx] == k
                made[by_k] = torch.rot90(xs[by_k], k, (2, 3))
        elif name == "flip":
            made = xs.flip(-2)
        elif name == "swap":
            made = _swap(xs, vertical[idx])
        elif name == "jigsaw":
            made = _jigsaw(xs, generator)
        else:
            made = _mix(x, idx, vertical[idx], generator)
        out[idx] = made
    return out
