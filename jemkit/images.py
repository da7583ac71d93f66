"""Pictures of samples: image tensors in [−1, 1] as PNG grids, 2-D points as scatter plots."""
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


def save_samples(x: Tensor, path: str | Path, reference: Tensor | None = None) -> Path:
    """Images (N, C, H, W) as a PNG grid; 2-D points (N, 2) as a scatter plot over ``reference`` data (grey)."""
    if x.dim() == 4:
        return save_grid(x, path)
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"can draw images (N, C, H, W) or 2-D points (N, 2), got {tuple(x.shape)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if reference is not None:
        r = reference.detach().cpu()
        ax.scatter(r[:, 0], r[:, 1], s=2, c="0.75", label="data", linewidths=0)
    p = x.detach().cpu()
    ax.scatter(p[:, 0], p[:, 1], s=2, c="tab:red", label="samples", linewidths=0)
    ax.set(xlim=(-1.25, 1.25), ylim=(-1.25, 1.25), aspect="equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
