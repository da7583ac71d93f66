"""The one place where energy, sampler, buffer and objective meet: one training step each."""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import Tensor

from ..config import SamplerConfig, TrainConfig
from ..energy import ClassifierEnergy
from ..objectives import LossOutput, discriminative, jem_hybrid
from ..sampling import SAMPLERS, ReplayBuffer
from ..utils import closest


def make_sampler(cfg: SamplerConfig, extra_steps: int = 0) -> Callable:
    """A sampler with the config's settings bound: ``sampler(energy, x, y=None, generator=None, callback=None)``."""
    if cfg.name not in SAMPLERS:
        raise ValueError(f"unknown sampler '{cfg.name}'{closest(cfg.name, SAMPLERS)}; choose one of {sorted(SAMPLERS)}")
    options = {"steps": cfg.steps + extra_steps, "step_size": cfg.step_size, "eval_mode": cfg.eval_mode}
    if cfg.name == "sgld":
        options["noise"] = cfg.noise
    return partial(SAMPLERS[cfg.name], **options)


def ce_step(energy: ClassifierEnergy, x: Tensor, y: Tensor, **_) -> LossOutput:
    """Discriminative baseline step: cross-entropy on the labelled batch."""
    return discriminative(energy, x, y)


def jem_step(
    energy: ClassifierEnergy,
    x: Tensor,
    y: Tensor,
    *,
    sampler: Callable,
    buffer: ReplayBuffer,
    train: TrainConfig,
    generator: torch.Generator | None = None,
) -> LossOutput:
    """JEM step (PCD): draw chains from the buffer (5% re-initialized), run SGLD, write them back,
    and return the hybrid loss CE(f(x), y) + E(x) − E(x_sampled)."""
    draw = buffer.sample(x.shape[0], generator=generator)
    last: dict = {}
    x_sampled = sampler(energy, draw.x, y=draw.y, generator=generator, callback=last.update)
    buffer.push(x_sampled, draw.index)
    out = jem_hybrid(
        energy, x, y, x_sampled,
        pyx_weight=train.pyx_weight, px_weight=train.px_weight, energy_l2=train.energy_l2,
    )
    if "grad" in last:  # ‖∇ₓE‖ at the chain's last step, mean over the batch (for the divergence guard)
        out.stats["sgld_grad_norm"] = last["grad"].flatten(1).norm(dim=1).mean()
    return out


STEPS = {"jem": jem_step, "ce": ce_step}
