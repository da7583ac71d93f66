"""What a run reports besides its loss: replay-buffer statistics, and TensorBoard beside metrics.csv.

TensorBoard gets the same scalars as ``metrics.csv`` (one tag per column, grouped as below) and the
replay-buffer sample grids as images; event files go into the run directory itself, so
``tensorboard --logdir runs/`` shows one line per run.
"""
from __future__ import annotations

import math
from pathlib import Path

from torch import Tensor

# TensorBoard tag group of each metrics.csv column (others go under "train/")
GROUPS = {"e_data": "energy", "e_sample": "energy", "gap": "energy", "gap_xy": "energy", "rank_loss": "energy", "rank_acc": "energy", "e_in": "energy", "e_out": "energy",
          "hinge_in": "energy", "hinge_out": "energy", "sgld_grad_norm": "sampler",
          "accept_rate": "sampler", "buffer_mean": "buffer", "buffer_std": "buffer", "test_acc": "eval", "test_nll": "eval", "test_ece": "eval", "test_agreement": "eval",
          "test_loss": "eval", "lr": "optim",
          "rss_mb": "memory", "peak_rss_mb": "memory", "faults_per_step": "memory"}
NOT_SCALARS = {"step", "epoch", "seconds"}


def buffer_stats(x: Tensor) -> dict[str, Tensor]:
    """Cheap health of the persistent chains x: (N, C, H, W), one pass over the buffer.

    buffer_mean: mean pixel value.
    buffer_std:  per-pixel standard deviation across the N chains, averaged over pixels — the buffer's
                 diversity: 0.577 for the U(−1, 1) initialization, → 0 when the chains collapse onto
                 one image (a failure JEM training can slide into).
    """
    x = x.detach().float()
    return {"buffer_mean": x.mean(), "buffer_std": x.std(dim=0).mean()}


class TensorBoard:
    """A ``torch.utils.tensorboard.SummaryWriter`` for a run directory (``train.tensorboard``).

    ``purge_step`` (a resume) hides events a killed run wrote after its last checkpoint.
    """

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ImportError("train.tensorboard=true needs the tensorboard package: pip install tensorboard "
                              "(or --set train.tensorboard=false)") from err
        self.writer = SummaryWriter(str(run_dir), purge_step=purge_step)

    def scalars(self, row: dict, step: int) -> None:
        """One metrics.csv row: every numeric column but step/epoch/seconds, as ``group/column``."""
        for k, v in row.items():
            if k not in NOT_SCALARS and isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(f"{GROUPS.get(k, 'train')}/{k}", v, step)
        self.writer.flush()

    def grid(self, x: Tensor, step: int, tag: str = "samples/replay_buffer") -> None:
        """Images in [−1, 1] as one grid (the same chains as samples/step_N.png)."""
        from torchvision.utils import make_grid

        x = x.detach().float().cpu().clamp(-1, 1).add(1).div(2)
        nrow = max(1, int(math.sqrt(len(x))))
        self.writer.add_image(tag, make_grid(x, nrow=nrow, padding=1, pad_value=1.0), step)

    def close(self) -> None:
        self.writer.close()

