"""The training images' Gaussian (``sampling.gaussian``), fitted once per evaluation and shared by the suites."""
from __future__ import annotations

from ..sampling.gaussian import Gaussian, RidgedGaussian


def training_gaussian(ctx) -> Gaussian:
    """``Gaussian.fit`` of ``ctx.data.x_train``, fitted once per evaluation (``ctx.shared``): model and baseline,
    and the inpainting and likelihood suites, read the same D × D covariance of the training set."""
    key = ("gaussian", ctx.data.name, tuple(ctx.data.shape))
    if key not in ctx.shared:
        ctx.shared[key] = Gaussian.fit(ctx.data.x_train)
    return ctx.shared[key]


def training_ridged_gaussian(ctx) -> RidgedGaussian:
    """``training_gaussian`` with the ridge ``Gaussian.select_ridge`` chooses on the training images: the
    likelihood yardstick, and the base of a tilted model (``train.objective=tilt``), which training fitted alike."""
    key = ("ridged_gaussian", ctx.data.name, tuple(ctx.data.shape))
    if key not in ctx.shared:
        ctx.shared[key] = RidgedGaussian(training_gaussian(ctx), Gaussian.select_ridge(ctx.data.x_train), ctx.data.x_test.device)
    return ctx.shared[key]


def density_base(ctx) -> RidgedGaussian | None:
    """The base density of the model under evaluation when it is an exponential tilt (its record's objective is
    ``tilt``: p(x) ∝ N(x) e^{−E(x)}), refitted to the evaluation's training images as training fitted it; None
    for every other model (p(x) ∝ e^{−E(x)})."""
    record = getattr(ctx.model, "record", None) or {}
    if record.get("objective") != "tilt":
        return None
    trained_on = record.get("dataset")
    if trained_on is not None and trained_on != ctx.data.name:
        raise ValueError(f"this model is a tilt of the Gaussian of its training images ({trained_on}); its density is "
                         f"not defined on {ctx.data.name}'s Gaussian: evaluate it on {trained_on}")
    return training_ridged_gaussian(ctx)


__all__ = ["Gaussian", "RidgedGaussian", "density_base", "training_gaussian", "training_ridged_gaussian"]
