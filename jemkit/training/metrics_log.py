"""What the loop reports, row by row: ``metrics.csv`` (one row every ``train.log_every`` steps and at
evaluations), the same scalars in TensorBoard, and this process's host memory.

A row holds the running means of the step statistics since the last row (averaged over ranks, one
host sync per row), the replay buffer's health, lr, epoch, seconds since the start, and
rss_mb / peak_rss_mb (MiB) and faults_per_step — minor page faults per training step since the
last row, near 0 once steady memory has warmed up. Only rank 0 writes files.
"""
from __future__ import annotations

import csv
import os
import time
from pathlib import Path

from torch import Tensor

from ..memory import host_memory
from . import distributed
from .distributed import World
from .monitor import TensorBoard, buffer_stats

LOG_COLUMNS = ["step", "epoch", "lr", "loss", "ce", "acc", "clean_acc", "e_data", "e_sample", "gap", "gap_xy", "rank_loss", "rank_acc", "ess",
               "e_in", "e_out", "hinge_in", "hinge_out", "sgld_grad_norm", "accept_rate", "buffer_mean", "buffer_std",
               "score_norm", "test_acc", "test_nll", "test_ece", "test_agreement", "test_loss", "seconds", "rss_mb", "peak_rss_mb", "faults_per_step"]


def open_csv(run_dir: Path, resumed_step: int | None):
    """metrics.csv for appending; on resume, rows after the resumed step are dropped first."""
    path = run_dir / "metrics.csv"
    rows = []
    if resumed_step is not None and path.is_file():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= resumed_step]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, LOG_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return open(path, "a", newline="")


class MetricsLog:
    """Running sums of the step statistics and the files they go to (metrics.csv, TensorBoard)."""

    def __init__(self, run_dir: Path, world: World, step: int, resumed: bool, tensorboard: bool, start: float):
        self.world, self.start = world, start  # start: time.perf_counter() when training began
        self.file = open_csv(run_dir, step if resumed else None) if world.main else open(os.devnull, "w")
        self.writer = csv.DictWriter(self.file, LOG_COLUMNS)
        self.tb = TensorBoard(run_dir, purge_step=step + 1 if resumed else None) if world.main and tensorboard else None
        self.restart(step)

    def restart(self, step: int) -> None:
        """Forget the sums (after a rollback, too): the next row averages the steps from ``step`` on."""
        self.sums, self.counts = {}, {}
        self.memory_mark = (step, host_memory()["minor_faults"])

    def add(self, stats: dict[str, Tensor]) -> None:
        for k, v in stats.items():
            v = v.float() if isinstance(v, Tensor) else v  # bf16 statistics (train.bf16) summed in float32
            self.sums[k] = self.sums.get(k, 0) + v
            self.counts[k] = self.counts.get(k, 0) + 1

    def means(self, buffer: Tensor | None) -> dict[str, float]:
        """The means since the last row over the steps that reported each statistic (with ``train.px_every`` the
        energies come from the steps with chains only), and the buffer's statistics, averaged over ranks; the sums restart."""
        means = {k: v / self.counts[k] for k, v in self.sums.items()}
        if buffer is not None:
            means.update(buffer_stats(buffer))
        self.sums, self.counts = {}, {}
        return {k: v.item() for k, v in distributed.mean(means, self.world).items()}

    def memory(self, step: int) -> dict[str, float]:
        """RSS now and at the process's peak (MiB), minor page faults per step since the last row."""
        m, (mark_step, mark_faults) = host_memory(), self.memory_mark
        cols = {"peak_rss_mb": round(m["peak_rss_mb"], 1),
                "faults_per_step": round((m["minor_faults"] - mark_faults) / max(step - mark_step, 1), 1)}
        if m["rss_mb"] is not None:
            cols["rss_mb"] = round(m["rss_mb"], 1)
        self.memory_mark = (step, m["minor_faults"])
        return cols

    def write(self, row: dict, step: int, epoch: float, lr: float) -> None:
        row.update(step=step, epoch=round(epoch, 3), lr=lr, seconds=round(time.perf_counter() - self.start, 2))
        self.writer.writerow(row)
        self.file.flush()
        if self.tb is not None:
            self.tb.scalars(row, step)

    def grid(self, x: Tensor, step: int) -> None:
        if self.tb is not None:
            self.tb.grid(x, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
