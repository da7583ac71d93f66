"""Samplers bound to their configs: the one place a ``SamplerConfig`` (or a checkpoint's record)
becomes a callable ``sampler(energy, x, y=None, generator=None, callback=None)``, and a score
model's ``ScoreConfig`` becomes its noise levels and annealed-Langevin draw."""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import Callable

import torch
from torch import Tensor

from ..config import Config, SamplerConfig, ScoreConfig, config_from_dict
from ..data import labelled_subset
from ..utils import closest
from .annealed import annealed_langevin, geometric_sigmas
from .init import build_init, uniform_init
from .langevin import langevin, sgld
from .mala import mala

SAMPLERS = {"sgld": sgld, "langevin": langevin, "mala": mala}


def make_sampler(cfg: SamplerConfig, extra_steps: int = 0) -> Callable:
    """A sampler with the config's settings bound: ``sampler(energy, x, y=None, generator=None, callback=None)``."""
    if cfg.name not in SAMPLERS:
        raise ValueError(f"unknown sampler '{cfg.name}'{closest(cfg.name, SAMPLERS)}; choose one of {sorted(SAMPLERS)}")
    options = {"steps": cfg.steps + extra_steps, "step_size": cfg.step_size, "eval_mode": cfg.eval_mode}
    if cfg.bf16:
        if cfg.name == "mala":
            raise ValueError("sampler.bf16 is for sgld and langevin; MALA's accept test needs float32 energies")
        options["autocast_dtype"] = torch.bfloat16
    for key in ("compile", "cuda_graph"):
        if getattr(cfg, key):
            if cfg.name == "mala":
                raise ValueError(f"sampler.{key} is for sgld and langevin, not mala")
            options[key] = True
    if cfg.name == "sgld":
        options.update(noise=cfg.noise, grad_clip=cfg.grad_clip, clamp=(-1.0, 1.0) if cfg.clamp else None)
    return partial(SAMPLERS[cfg.name], **options)


def sampler_config(record: dict, **overrides) -> SamplerConfig:
    """The training sampler's settings of a checkpoint record (its resolved config), with ``overrides``
    (``None`` values ignored) — the one reader of a checkpoint's sampler."""
    cfg = config_from_dict(record["config"]).sampler
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def fresh_sampler_config(record: dict, steps: int | None = None) -> SamplerConfig:
    """The training sampler of a checkpoint record run for fresh chains: ``steps`` when given, else the config's
    ``sampler.fresh_steps``, else its training ``sampler.steps``."""
    cfg = sampler_config(record)
    return dataclasses.replace(cfg, steps=steps if steps is not None else (cfg.fresh_steps or cfg.steps))


def sampler_from_record(record: dict, **overrides) -> Callable:
    """``make_sampler`` of a checkpoint's training sampler (``sampler_config``)."""
    return make_sampler(sampler_config(record, **overrides))


def training_init(cfg: Config, x_train: Tensor, y_train: Tensor, num_classes: int) -> Callable:
    """``cfg.buffer.init`` fitted to what training may see: JEM++'s class Gaussians to the labelled images only
    (``data.labels_per_class`` > 0: a semi-supervised run never sees the other labels), the one Gaussian to all
    training images (labels unused), U(−1, 1) unfitted."""
    d = cfg.data
    if d.labels_per_class > 0 and cfg.buffer.init == "class_gaussian":
        idx = labelled_subset(y_train, d.labels_per_class, num_classes, d.split_seed)
        x_train, y_train = x_train[idx], y_train[idx]
    return build_init(cfg.buffer.init, x_train, y_train, num_classes)


def init_from_record(record: dict, x_train: Tensor, y_train: Tensor) -> Callable:
    """Where a checkpoint's training chains started (``training_init`` of its config, fitted again to
    ``x_train``), so fresh chains are run the way the model was trained."""
    return training_init(config_from_dict(record["config"]), x_train, y_train, record["num_classes"])


def noise_levels(objective: str, cfg: ScoreConfig) -> Tensor:
    """The σ's a score model is trained on and sampled with: NCSN's geometric σ_1 > … > σ_L, or the one
    level ``sigma_min`` of dsm and ssm."""
    if objective == "ncsn":
        return geometric_sigmas(cfg.sigma_max, cfg.sigma_min, cfg.num_sigmas)
    return torch.tensor([cfg.sigma_min])


def draw_score_samples(model, cfg: Config, n: int, *, steps: int | None = None, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> Tensor:
    """``n`` samples of a score model by annealed Langevin dynamics from U(−1, 1) with the config's noise
    levels and step size (``steps`` per level overrides ``score.sampler_steps``)."""
    s = cfg.score
    x0 = uniform_init(n, model.input_shape, generator=generator, device=device)
    return annealed_langevin(model, x0, sigmas=noise_levels(cfg.train.objective, s), step_scale=s.sampler_eps,
                             steps=s.sampler_steps if steps is None else steps, denoise=s.denoise, generator=generator)
