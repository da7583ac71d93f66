"""The one place where energy, sampler, buffer and objective meet: one training step each."""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import Tensor

from ..config import SamplerConfig, TrainConfig
from ..energy import ClassifierEnergy
from ..objectives import LossOutput, discriminative, jem_hybrid, joint_contrastive
from ..sampling import SAMPLERS, ReplayBuffer
from ..utils import closest


def make_sampler(cfg: SamplerConfig, extra_steps: int = 0) -> Callable:
    """A sampler with the config's settings bound: ``sampler(energy, x, y=None, generator=None, callback=None)``."""
    if cfg.name not in SAMPLERS:
        raise ValueError(f"unknown sampler '{cfg.name}'{closest(cfg.name, SAMPLERS)}; choose one of {sorted(SAMPLERS)}")
    options = {"steps": cfg.steps + extra_steps, "step_size": cfg.step_size, "eval_mode": cfg.eval_mode}
    if cfg.name == "sgld":
        options.update(noise=cfg.noise, grad_clip=cfg.grad_clip, clamp=(-1.0, 1.0) if cfg.clamp else None)
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
    x_unlabeled: Tensor | None = None,
) -> LossOutput:
    """JEM step (PCD): draw chains from the buffer (5% re-initialized), run SGLD, write them back,
    and return the hybrid loss CE(f(x), y) + E(x) − E(x_sampled).

    With a class-conditional buffer the chains follow E(x, y') for classes y' drawn uniformly
    (samples from p(y) p(x|y), JEM's p(x|y)-factored variant); ``train.pxy_weight > 0`` adds
    JEM's log p(x, y) term with chains conditioned on the batch's own labels.
    """
    last: dict = {}
    accepts: list[Tensor] = []

    def record(info: dict) -> None:  # keep the last step's gradient; collect MALA's acceptances
        last.update(info)
        if "accept" in info:
            accepts.append(info["accept"])

    def advance(y_chain: Tensor | None) -> Tensor:
        draw = buffer.sample(x.shape[0], y=y_chain, generator=generator)
        x_sampled = sampler(energy, draw.x, y=draw.y, generator=generator, callback=record)
        buffer.push(x_sampled, draw.index)
        return x_sampled

    out = jem_hybrid(
        energy, x, y, advance(None),
        pyx_weight=train.pyx_weight, px_weight=train.px_weight, energy_l2=train.energy_l2, x_unlabeled=x_unlabeled,
    )
    if train.pxy_weight > 0:
        joint = joint_contrastive(energy, x, y, advance(y))
        out = LossOutput(out.loss + train.pxy_weight * joint.loss, {**out.stats, **joint.stats})
    if "grad" in last:  # ‖∇ₓE‖ at the chain's last step, mean over the batch (for the divergence guard)
        out.stats["sgld_grad_norm"] = last["grad"].flatten(1).norm(dim=1).mean()
    if accepts:
        out.stats["accept_rate"] = torch.stack(accepts).mean()
    return out


STEPS = {"jem": jem_step, "ce": ce_step}
