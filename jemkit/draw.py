"""``jemkit sample``: draw samples of a checkpoint into a picture.

Classifiers: fresh chains of the checkpoint's training sampler from its training init (U(−1, 1), or
the class Gaussians refitted to its training set), as the ``samples`` suite runs them, optionally
class-conditional on E(x, y) = −f(x)[y]. Score models: annealed Langevin from U(−1, 1); 2-D points
are drawn over the held-out data and scored by their energy distance to it.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import is_score_checkpoint, load, load_score_model
from .config import config_from_dict
from .data import dataset_of
from .data.toys import energy_distance
from .energy import ClassifierEnergy
from .images import save_grid, save_samples
from .sampling import draw_score_samples, fresh_chains, init_from_record, make_sampler, noise_levels, sampler_config
from .utils import make_generator


def draw(checkpoint: str | Path, out: str | Path, n: int, *, cls: int | None = None, steps: int | None = None,
         seed: int = 0, device: torch.device | str = "cpu") -> str:
    """``n`` samples of ``checkpoint`` into the PNG ``out``; returns a one-line summary."""
    if n <= 0:
        raise ValueError(f"-n must be > 0, got {n}")
    if is_score_checkpoint(checkpoint):
        if cls is not None:
            raise ValueError("--class needs a classifier; this checkpoint is a score model")
        return draw_score_model(checkpoint, out, n, steps=steps, seed=seed, device=device)
    return draw_classifier(checkpoint, out, n, cls=cls, steps=steps, seed=seed, device=device)


def draw_classifier(checkpoint, out, n: int, *, cls: int | None, steps: int | None, seed: int, device) -> str:
    model = load(checkpoint, device=device)
    if cls is not None and not 0 <= cls < model.num_classes:
        raise ValueError(f"--class must be in [0, {model.num_classes - 1}], got {cls}")
    y = None if cls is None else torch.full((n,), cls, dtype=torch.long, device=device)
    x, summary = classifier_samples(model, n, y=y, steps=steps, generator=make_generator(device, seed))
    return f"wrote {save_grid(x, out)} ({summary})"


def classifier_samples(model, n: int, *, y: torch.Tensor | None = None, steps: int | None = None,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, str]:
    """``n`` fresh chains of a loaded classifier's training sampler (``steps`` overrides its length) from its
    training init, class-conditional with ``y``; the samples (n, C, H, W) and a phrase saying how they were drawn."""
    device = next(model.parameters()).device
    cfg = sampler_config(model.record, steps=steps)
    init, where = _init_of(model.record, device)
    x = fresh_chains(ClassifierEnergy(model, model.record.get("temperature", 1.0)), make_sampler(cfg), n,
                     model.input_shape, y=y, init=init, generator=generator, device=device)
    return x, f"{n} samples, {cfg.steps} {cfg.name} steps from {where}"


def _init_of(record: dict, device) -> tuple:
    """The training init of a checkpoint, and words for it; class Gaussians need the training set."""
    if config_from_dict(record["config"]).buffer.init == "uniform":
        return init_from_record(record, None, None), "U(-1, 1)"
    data = dataset_of(record).to(device)
    return init_from_record(record, data.x_train, data.y_train), "class Gaussians fitted to the training set"


def draw_score_model(checkpoint, out, n: int, *, steps: int | None, seed: int, device) -> str:
    model = load_score_model(checkpoint, device)
    cfg = config_from_dict(model.record["config"])
    x = draw_score_samples(model, cfg, n, steps=steps, generator=make_generator(device, seed), device=device)
    reference, extra = None, ""
    if x.dim() == 2:
        reference = dataset_of(model.record).x_test.to(device)
        extra = f"; energy distance to {len(reference)} held-out points: {energy_distance(x, reference):.4f}"
    levels = len(noise_levels(cfg.train.objective, cfg.score))
    per_level = cfg.score.sampler_steps if steps is None else steps
    return f"wrote {save_samples(x, out, reference)} ({n} samples, annealed Langevin {levels} x {per_level} steps){extra}"
