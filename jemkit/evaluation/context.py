"""What every evaluation suite reads: the model, its data, where to write, and the shared options.

A suite is ``suite(ctx) -> dict`` of nested metrics; it may write PNGs into ``ctx.out_dir``, their
names prefixed ``ctx.prefix`` (empty for the model, ``baseline_`` for the baseline).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from ..data import ImageData
from ..energy import ClassifierEnergy
from ..model import Classifier, predict_logits
from ..utils import make_generator


@dataclass
class EvalContext:
    model: Classifier
    data: ImageData
    out_dir: Path
    label: str  # "model" or "baseline"
    seed: int = 0
    n_ood: int = 1000
    sample_steps: int | None = None  # fresh chains of the samples suite; None: the checkpoint's sampler.fresh_steps, else its training steps
    ece_bins: int = 20
    ood_temperature: float = 1.0  # T of the OOD "energy" score (Liu et al. 2020)
    quick: bool = False  # small versions of every suite (tests, smoke runs)
    progress: bool = True
    ood_extra: dict = field(default_factory=dict)  # the user's OOD sets: name → (N, C, H, W) in [−1, 1]
    shared: dict = field(default_factory=dict)  # per-evaluation state shared by model and baseline (FID features)
    options: dict = field(default_factory=dict)  # per-suite options, e.g. {"robustness": {"linf_eps": [0, 0.1]}}

    @property
    def prefix(self) -> str:
        return "" if self.label == "model" else f"{self.label}_"

    @cached_property
    def energy(self) -> ClassifierEnergy:
        """E(x) = −T · logsumexp_y f(x)[y] / T with the checkpoint's temperature T (1 if unrecorded)."""
        return ClassifierEnergy(self.model, self.model.record.get("temperature", 1.0))

    @cached_property
    def logits(self) -> torch.Tensor:
        """f(x) on the whole test set: (N, K)."""
        return predict_logits(self.model, self.data.x_test)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A generator on the data's device seeded ``seed + offset``: one stream per suite and purpose."""
        return make_generator(self.data.x_test.device, self.seed + offset)
