"""The learning-rate schedule, a ``torch.optim.lr_scheduler.LRScheduler``: linear warmup over
``optim.warmup`` steps, then ×``optim.decay`` at each ``optim.decay_at`` fraction of training,
times the divergence guard's ``lr_scale`` (halved, by default, at every recovery).

Position: ``last_epoch`` is the number of finished training steps, so the optimizer's lr is always
the one of the next step, t = last_epoch + 1:
    lr(t) = optim.lr · min(1, t / warmup) · decay^#{f ∈ decay_at : t > ⌊f · steps⌋} · lr_scale
"""
from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ..config import OptimConfig
from .guard import GuardState


def lr_at(step: int, base_lr: float, cfg: OptimConfig, total_steps: int) -> float:
    """lr of ``step`` (counted from 1) without the guard's scale: linear warmup, then step decay."""
    warm = min(1.0, step / cfg.warmup) if cfg.warmup > 0 else 1.0
    return base_lr * warm * cfg.decay ** sum(step > int(f * total_steps) for f in cfg.decay_at)


class WarmupStepDecay(LRScheduler):
    """``lr_at`` × the guard's ``lr_scale``, positioned after ``done_steps`` finished steps.

    Build it again after a resume or a recovery (``done_steps`` = the restored step): the guard's
    scale is read when the lr is computed, and a checkpoint that predates saved scheduler state
    resumes at the position its step implies. ``state_dict`` holds the position and base lrs only.
    """

    def __init__(self, optimizer: Optimizer, cfg: OptimConfig, total_steps: int, guard: GuardState,
                 done_steps: int = 0):
        self.cfg, self.total_steps, self.guard = cfg, total_steps, guard
        for group in optimizer.param_groups:
            group["initial_lr"] = cfg.lr  # the base (optimizer states saved before the scheduler lack it)
        super().__init__(optimizer, last_epoch=done_steps - 1)

    def get_lr(self) -> list[float]:
        step = self.last_epoch + 1
        return [lr_at(step, base, self.cfg, self.total_steps) * self.guard.lr_scale for base in self.base_lrs]

    def state_dict(self) -> dict:
        return {k: v for k, v in super().state_dict().items() if k not in ("cfg", "total_steps", "guard")}
