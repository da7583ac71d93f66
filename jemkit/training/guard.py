"""Divergence guard: detect a run going wrong, and the state of its recoveries.

Detected (each check costs one host sync per step, on a handful of scalars):
  non-finite loss, energies (e_data, e_sample; energy_oe's e_in, e_out) or SGLD gradient; |E| of data,
  samples or outliers above ``energy_bound``;
  |E(x_data) − E(x_sampled)| above ``gap_bound``; mean SGLD input-gradient norm above
  ``grad_bound``; training accuracy (per log interval) falling ``acc_drop`` below its best.
Recovery (done by the trainer): roll back to the last good checkpoint, lr *= ``lr_factor``,
optionally re-initialize the replay buffer and add SGLD steps; stop after ``max_recoveries``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch

from ..config import GuardConfig
from ..objectives import LossOutput


class DivergenceError(RuntimeError):
    """Training diverged and the allowed recoveries are used up."""


@dataclass
class GuardState:
    recoveries: int = 0
    lr_scale: float = 1.0
    extra_sgld_steps: int = 0
    best_acc: float = 0.0

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        """Restore the fields; others (``nan_fired``, ``lr_fired`` of checkpoints from before fault
        injection moved to test hooks) are ignored."""
        for f in fields(self):
            if f.name in state:
                setattr(self, f.name, state[f.name])


def check_step(cfg: GuardConfig, out: LossOutput) -> str | None:
    """A reason string if this step's loss and statistics show divergence, else None."""
    names = ["loss"] + [k for k in ("e_data", "e_sample", "e_in", "e_out", "gap", "sgld_grad_norm") if k in out.stats]
    values = torch.stack([out.loss.detach().float()] + [out.stats[k].float() for k in names[1:]]).tolist()
    v = dict(zip(names, values))
    bad = [k for k, x in v.items() if not math.isfinite(x)]
    if bad:
        return f"non-finite {', '.join(bad)} ({', '.join(f'{k}={v[k]}' for k in bad)})"
    for k in ("e_data", "e_sample", "e_in", "e_out"):
        if k in v and abs(v[k]) > cfg.energy_bound:
            return f"energy out of bounds: |{k}| = {abs(v[k]):.3g} > {cfg.energy_bound:g}"
    if "gap" in v and abs(v["gap"]) > cfg.gap_bound:
        return f"energy gap exploded: |E(x_data) − E(x_sampled)| = {abs(v['gap']):.3g} > {cfg.gap_bound:g}"
    if "sgld_grad_norm" in v and v["sgld_grad_norm"] > cfg.grad_bound:
        return f"SGLD gradient norm exploded: {v['sgld_grad_norm']:.3g} > {cfg.grad_bound:g}"
    return None


def check_accuracy(cfg: GuardConfig, state: GuardState, acc: float) -> str | None:
    """Collapse: the interval's training accuracy fell ``acc_drop`` below its best; updates the best."""
    if acc < state.best_acc - cfg.acc_drop:
        return f"training accuracy collapsed: {acc:.3f} after a best of {state.best_acc:.3f}"
    state.best_acc = max(state.best_acc, acc)
    return None
