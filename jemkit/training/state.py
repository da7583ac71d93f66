"""TrainState: everything besides the weights, the weight average and the replay buffer that a
bitwise-exact resume needs — saved as ``step_N.state.pt`` (tensors and plain data, read with
``weights_only=True``)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from ..config import OptimConfig
from .guard import GuardState
from .schedule import WarmupStepDecay

RANK_STATE = ("stream", "unlabeled", "sample_gen", "rng")  # what each rank saves for itself (step_N.state.rankR.pt)


def rng_state() -> dict:
    """Every global RNG: Python, NumPy, torch CPU and CUDA (as tensors and plain data, for weights_only)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(mt), gauss], "numpy": [kind, torch.from_numpy(keys.copy()), pos, has_gauss, cached],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


@dataclass
class TrainState:
    """The step, optimizer, lr schedule, data positions, generators, guard and last test accuracy.

    ``stream``/``unlabeled`` are batch streams with ``state_dict()``; ``ema`` (optional) contributes
    only its update count here (its weights are a file of their own).
    """

    optimizer: torch.optim.Optimizer
    optim_cfg: OptimConfig
    total_steps: int
    stream: object
    unlabeled: object | None
    sample_gen: torch.Generator
    ema: AveragedModel | None = None
    guard: GuardState = field(default_factory=GuardState)
    step: int = 0
    test_acc: float = float("nan")
    scheduler: WarmupStepDecay | None = None
    oe_margins: list[float] | None = None  # oe.margins=auto: (m_in, m_out) measured at step 0

    def __post_init__(self):
        self.restart_schedule()

    def restart_schedule(self, done_steps: int | None = None) -> None:
        """Position the lr schedule after ``done_steps`` (default: ``step``) with the guard's current lr scale."""
        self.scheduler = WarmupStepDecay(self.optimizer, self.optim_cfg, self.total_steps, self.guard,
                                         self.step if done_steps is None else done_steps)

    def state_dict(self) -> dict:
        state = {"step": self.step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "stream": self.stream.state_dict(),
                 "unlabeled": self.unlabeled.state_dict() if self.unlabeled is not None else None,
                 "sample_gen": self.sample_gen.get_state(), "rng": rng_state(), "guard": self.guard.state_dict(),
                 "test_acc": self.test_acc}
        if self.oe_margins is not None:
            state["oe_margins"] = list(self.oe_margins)
        if self.ema is not None:
            state["ema_updates"] = int(self.ema.n_averaged)
        return state

    def load_state_dict(self, state: dict, restore_guard: bool = True) -> None:
        """Restore a saved state; one written before the scheduler was saved resumes where its step puts it."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.stream.load_state_dict(state["stream"])
        if self.unlabeled is not None:
            self.unlabeled.load_state_dict(state["unlabeled"])
        self.sample_gen.set_state(state["sample_gen"])
        set_rng_state(state["rng"])
        if restore_guard:
            self.guard.load_state_dict(state["guard"])
        self.step, self.test_acc = int(state["step"]), float(state["test_acc"])
        self.oe_margins = state.get("oe_margins")
        if self.ema is not None:
            self.ema.n_averaged.fill_(int(state.get("ema_updates", 0)))
        self.restart_schedule(int(state["scheduler"]["last_epoch"]) if "scheduler" in state else self.step)
