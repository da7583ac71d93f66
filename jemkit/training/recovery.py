"""Divergence recovery: roll back to the last good checkpoint and change course (guard.py detects).

Each recovery: lr ×= ``guard.lr_factor`` (through the schedule's ``lr_scale``), optionally a fresh
replay buffer and more SGLD steps; after ``guard.max_recoveries`` the run stops with DivergenceError.
"""
from __future__ import annotations

from typing import Callable

from ..checkpoint import latest_valid
from ..objectives import LossOutput
from . import distributed
from .guard import DivergenceError
from .run import Run


def recover(run: Run, reason: str) -> Callable[..., LossOutput]:
    """Roll ``run`` back after a divergence at the next step; return the step function to continue with."""
    g, cfg, failed_at = run.state.guard, run.cfg.guard, run.step + 1
    if g.recoveries >= cfg.max_recoveries:
        raise DivergenceError(f"training diverged at step {failed_at} ({reason}) and {g.recoveries} recoveries "
                              f"did not help; stopping. The last good checkpoint is in {run.run_dir / 'checkpoints'}")
    found = distributed.on_main(lambda: latest_valid(run.run_dir / "checkpoints"), run.world)
    if found is None:
        raise DivergenceError(f"training diverged at step {failed_at} ({reason}) and no checkpoint is left to roll back to")
    run.restore(found[0], restore_guard=False)
    changes = _change_course(run)
    run.event(f"divergence at step {failed_at}: {reason}. Recovery {g.recoveries}/{cfg.max_recoveries}: rolled back "
              f"to step {run.step}, {', '.join(changes)}")
    return run.step_fn()


def _change_course(run: Run) -> list[str]:
    """Count the recovery, scale the lr down, add SGLD steps, maybe a fresh buffer; what changed, in words."""
    g, cfg = run.state.guard, run.cfg.guard
    g.recoveries += 1
    g.best_acc = 0.0  # accuracy collapse is judged afresh from the rolled-back state
    g.lr_scale *= cfg.lr_factor
    g.extra_sgld_steps += cfg.extra_sgld_steps
    run.state.restart_schedule()  # the next step's lr with the new scale
    changes = [f"lr x{g.lr_scale:g}"]
    if cfg.reset_buffer and run.buffer is not None:
        run.buffer = run.new_buffer()
        changes.append("buffer re-initialized")
    if g.extra_sgld_steps:
        changes.append(f"SGLD steps +{g.extra_sgld_steps}")
    return changes
