"""Image grids: tensors in [−1, 1] to PNG files."""
from __future__ import annotations

import math
from pathlib import Path

from torch import Tensor
from torchvision.utils import save_image


def save_grid(x: Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Save (N, C, H, W) images in [−1, 1] as one PNG grid (``nrow`` images per row, default √N)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(math.sqrt(len(x))))
    # small images (8×8 digits) are upscaled so a grid is readable
    scale = max(1, 32 // x.shape[-1])
    x = x.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    if scale > 1:
        x = x.repeat_interleave(scale, dim=-1).repeat_interleave(scale, dim=-2)
    save_image(x, str(path), nrow=nrow, padding=2, pad_value=1.0)
    return path
