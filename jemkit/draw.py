"""``jemkit sample``: draw samples of a checkpoint into a picture.

Classifiers: fresh chains of the checkpoint's training sampler (``sampler.fresh_steps`` long when its config
sets it) from its training init (U(−1, 1), or the one or the class Gaussians refitted to its training set), as
the ``samples`` suite runs them, optionally class-conditional on E(x, y) = −f(x)[y]. ``init`` starts them elsewhere: ``uniform``, ``gaussian``, ``class_gaussian``,
``data`` (held-out test images, of the class when one is asked) or ``buffer`` (entries of the checkpoint's
saved replay buffer: the chains training left behind). Score models: annealed Langevin from U(−1, 1); 2-D points
are drawn over the held-out data and scored by their energy distance to it.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import is_score_checkpoint, load, load_buffer, load_score_model
from .config import config_from_dict
from .data import dataset_of
from .data.toys import energy_distance
from .energy import ClassifierEnergy
from .images import save_grid, save_samples
from .sampling import (build_init, draw_score_samples, fresh_chains, fresh_sampler_config, init_from_record, make_sampler,
                       noise_levels)
from .utils import closest, make_generator

INITS = ("uniform", "gaussian", "class_gaussian", "data", "buffer")  # where ``jemkit sample --init`` starts chains


def draw(checkpoint: str | Path, out: str | Path, n: int, *, cls: int | None = None, steps: int | None = None,
         seed: int = 0, device: torch.device | str = "cpu", init: str | None = None) -> str:
    """``n`` samples of ``checkpoint`` into the PNG ``out``; returns a one-line summary. ``init``: one of
    ``INITS`` (classifiers only); None: where the checkpoint's training chains started."""
    if n <= 0:
        raise ValueError(f"-n must be > 0, got {n}")
    if init is not None and init not in INITS:
        raise ValueError(f"unknown --init '{init}'{closest(init, INITS)}; choose from {', '.join(INITS)}")
    if is_score_checkpoint(checkpoint):
        if cls is not None or init is not None:
            raise ValueError(f"{'--class' if cls is not None else '--init'} needs a classifier; this checkpoint is a "
                             "score model (annealed Langevin from U(-1, 1))")
        return draw_score_model(checkpoint, out, n, steps=steps, seed=seed, device=device)
    return draw_classifier(checkpoint, out, n, cls=cls, steps=steps, seed=seed, device=device, init=init)


def draw_classifier(checkpoint, out, n: int, *, cls: int | None, steps: int | None, seed: int, device,
                    init: str | None = None) -> str:
    model = load(checkpoint, device=device)
    if cls is not None and not 0 <= cls < model.num_classes:
        raise ValueError(f"--class must be in [0, {model.num_classes - 1}], got {cls}")
    y = None if cls is None else torch.full((n,), cls, dtype=torch.long, device=device)
    x, summary = classifier_samples(model, n, y=y, steps=steps, generator=make_generator(device, seed), init=init)
    return f"wrote {save_grid(x, out)} ({summary})"


def classifier_samples(model, n: int, *, y: torch.Tensor | None = None, steps: int | None = None,
                       generator: torch.Generator | None = None, init: str | None = None) -> tuple[torch.Tensor, str]:
    """``n`` fresh chains of a loaded classifier's training sampler (its length: ``steps``, else
    ``fresh_sampler_config``'s) from its training init (or ``init``, one of ``INITS``), class-conditional with
    ``y``; the samples (n, C, H, W) and a phrase saying how they were drawn."""
    device = next(model.parameters()).device
    cfg = fresh_sampler_config(model.record, steps=steps)
    start, where = _init_of(model, device, init)
    x = fresh_chains(ClassifierEnergy(model, model.record.get("temperature", 1.0)), make_sampler(cfg), n,
                     model.input_shape, y=y, init=start, generator=generator, device=device)
    return x, f"{n} samples, {cfg.steps} {cfg.name} steps from {where}"


def _init_of(model, device, name: str | None) -> tuple:
    """The chains' init (the checkpoint's training init when ``name`` is None) and words for it."""
    record = model.record
    trained, name = name is None, name or config_from_dict(record["config"]).buffer.init
    if name == "uniform":
        return build_init("uniform"), "U(-1, 1)"
    if name == "buffer":
        return _buffer_init(model), "the checkpoint's replay buffer"
    data = dataset_of(record).to(device)
    if name == "data":
        return _data_init(data.x_test, data.y_test), "held-out test images"
    words = "a Gaussian fitted to the training set" if name == "gaussian" else "class Gaussians fitted to the training set"
    if trained:  # fitted as training fitted it (a semi-supervised run's class Gaussians: its labelled images)
        return init_from_record(record, data.x_train, data.y_train), words
    return build_init(name, data.x_train, data.y_train, model.num_classes), words


def _data_init(x: torch.Tensor, labels: torch.Tensor):
    """Start at random held-out images (of class y[i] for chain i when ``y`` is given)."""
    def init(n, shape, *, y=None, generator=None, device="cpu", dtype=torch.float32):
        if y is None:
            pick = torch.randint(0, len(x), (n,), generator=generator, device=device)
        else:
            pick = torch.empty(n, dtype=torch.long, device=device)
            for c in y.unique().tolist():
                pool = (labels == c).nonzero().squeeze(1).to(device)
                idx = (y == c).nonzero().squeeze(1)
                pick[idx] = pool[torch.randint(0, len(pool), (len(idx),), generator=generator, device=device)]
        return x[pick].to(device, dtype).reshape(n, *shape)
    return init


def _buffer_init(model):
    """Start at random entries of the saved replay buffer; a class-conditional buffer (one segment per class)
    gives chain i an entry of its class y[i]."""
    buffer = load_buffer(model.checkpoint_path)
    if buffer is None:
        raise ValueError("--init buffer: this checkpoint has no saved replay buffer (only EBM training with "
                         "train.chain_init=buffer saves one); try --init data or class_gaussian")
    conditional = config_from_dict(model.record["config"]).buffer.conditional
    per_class = len(buffer) // model.num_classes

    def init(n, shape, *, y=None, generator=None, device="cpu", dtype=torch.float32):
        if y is None or not conditional:
            pick = torch.randint(0, len(buffer), (n,), generator=generator, device=device)
        else:
            pick = y * per_class + torch.randint(0, per_class, (n,), generator=generator, device=device)
        return buffer.to(device)[pick].to(dtype).reshape(n, *shape)
    return init


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
