"""Distal adversaries (Nguyen et al. 2015, "fooling images"; JEM §5.3): images far from the data
that the classifier labels with high confidence.

From U(−1, 1) noise, projected gradient ascent on the class log-probability,

    x ← clip(x + η ∇ₓ log p(y = c | x), −1, 1),      log p(c | x) = f(x)[c] − logsumexp_y f(x)[y],

for a fixed number of steps and step size η. Then compare, on these images and on test images,
the confidence p(c|x) and the unnormalized log-density log p(x) + log Z = −E(x). JEM's claim: a
generative model that is fooled into high confidence still gives the fooling images a low log p(x);
a plain classifier's −E(x) (its logsumexp) does not separate them from the data.
Only differences of −E within one model are meaningful (log Z differs between models), so the
scale-free summary is ``logp_percentile``: the mean fraction of test images with lower −E.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..energy import ClassifierEnergy
from ..images import save_grid
from ..sampling import uniform_init
from ..utils import frozen
from .context import EvalContext


def class_log_prob(energy: ClassifierEnergy, x: Tensor, y: Tensor) -> Tensor:
    """log p(y|x) = log_softmax(f(x))[y]: (B,)."""
    return F.log_softmax(energy.logits(x), dim=1).gather(1, y.view(-1, 1)).squeeze(1)


def distal_adversaries(
    energy: ClassifierEnergy,
    x0: Tensor,
    y: Tensor,
    *,
    steps: int,
    step_size: float,
    callback: Callable[[dict], None] | None = None,
) -> Tensor:
    """Projected gradient ascent on log p(y|x) from ``x0`` (deterministic given x0).

    ``callback`` gets {step, x (after the step), log_prob (before the step)} after every step.
    The net is frozen (eval mode, no parameter gradients) and restored afterwards.
    """
    if steps < 0 or step_size <= 0:
        raise ValueError(f"need steps >= 0 and step_size > 0, got {steps} and {step_size}")
    x = x0.detach().clone()
    with frozen(energy), torch.enable_grad():
        for t in range(steps):
            x.requires_grad_(True)
            logp = class_log_prob(energy, x, y)
            (grad,) = torch.autograd.grad(logp.sum(), x)
            x = x.detach().add_(grad, alpha=step_size).clamp_(-1.0, 1.0)
            if callback is not None:
                callback({"step": t, "x": x, "log_prob": logp.detach()})
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"distal ascent produced non-finite images (step_size={step_size}, steps={steps})")
    return x


@torch.no_grad()
def confidence_and_logp(energy: ClassifierEnergy, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """p(y|x) (or max_y p(y|x) when ``y`` is None) and −E(x) = logsumexp f(x), both (B,)."""
    logits = energy.logits(x)
    probs = logits.softmax(1)
    conf = probs.max(1).values if y is None else probs.gather(1, y.view(-1, 1)).squeeze(1)
    return conf, -energy.energy_from_logits(logits)


def suite_distal(
    ctx: EvalContext, *, per_class: int | None = None, steps: int | None = None, step_size: float = 0.1, n_test: int = 500
) -> dict:
    """Distal adversaries for every class (default 10 per class and 100 steps; 2 and 5 when ``ctx.quick``).

    Reports for the distal images: ``confidence_start`` / ``confidence`` (mean p(c|x) before and
    after), ``logp`` (mean −E(x)), ``logp_gap`` (``logp`` − ``test_logp``, nats) and
    ``logp_percentile``; for the test images: ``test_confidence`` (mean max_y p(y|x)) and
    ``test_logp``. Writes ``{prefix}distal.png``, one row per class.
    """
    per_class = per_class or (2 if ctx.quick else 10)
    steps = steps or (5 if ctx.quick else 100)
    k, device = ctx.model.num_classes, ctx.data.x_test.device
    y = torch.arange(k, device=device).repeat_interleave(per_class)
    x0 = uniform_init(len(y), ctx.model.input_shape, generator=ctx.generator(20), device=device, dtype=ctx.data.x_test.dtype)
    with frozen(ctx.energy):
        conf0, _ = confidence_and_logp(ctx.energy, x0, y)
        x = distal_adversaries(ctx.energy, x0, y, steps=steps, step_size=step_size)
        conf, logp = confidence_and_logp(ctx.energy, x, y)
        test_conf, test_logp = confidence_and_logp(ctx.energy, ctx.data.x_test[:n_test])
    percentile = (test_logp.view(1, -1) < logp.view(-1, 1)).float().mean(1)  # (N,): share of test images below
    save_grid(x, ctx.out_dir / f"{ctx.prefix}distal.png", nrow=per_class)
    return {"distal": {
        "per_class": per_class, "steps": steps, "step_size": step_size,
        "confidence_start": conf0.mean().item(), "confidence": conf.mean().item(),
        "logp": logp.mean().item(), "logp_gap": (logp.mean() - test_logp.mean()).item(),
        "logp_percentile": percentile.mean().item(),
        "test_confidence": test_conf.mean().item(), "test_logp": test_logp.mean().item(),
    }}
