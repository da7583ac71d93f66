"""Evaluation suites by name, run on a checkpoint (and its baseline) into one metrics.json.

Each suite is ``suite(ctx: EvalContext) -> dict`` of nested metrics, and may write PNGs into the
output directory (file names prefixed ``baseline_`` for the baseline). ``evaluate`` merges them:
the model's metrics at the top level of metrics.json, the baseline's under ``baseline``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..checkpoint import load, resolve_checkpoint
from ..data import ImageData, dataset_of, load_ood_set
from ..model import Classifier
from ..utils import closest, resolve_device
from .calibration import suite_calibration
from .classification import suite_accuracy
from .context import EvalContext
from .distal import suite_distal
from .features import suite_features
from .fid import feature_fid_extractor, inception_fid_extractor
from .inpainting import suite_inpainting
from .likelihood import suite_likelihood
from .ood import suite_ood
from .robustness import suite_robustness
from .samples import suite_samples

TAKE_OPTIONS = ("robustness", "inpainting", "features", "likelihood")  # suites reading ctx.options[name]
SUITES = {"accuracy": suite_accuracy, "calibration": suite_calibration, "ood": suite_ood, "samples": suite_samples,
          "inpainting": suite_inpainting, "distal": suite_distal, "likelihood": suite_likelihood,
          "robustness": suite_robustness, "features": suite_features}
log = logging.getLogger("jemkit")
DEFAULT_SUITES = ("accuracy", "calibration", "ood", "samples")


def check_suites(names: list[str]) -> list[str]:
    """Validate suite names; ``all`` stands for every suite."""
    if "all" in names:
        return list(SUITES)
    for n in names:
        if n not in SUITES:
            raise ValueError(f"unknown suite '{n}'{closest(n, [*SUITES, 'all'])}; available: {', '.join(SUITES)}, all")
    return list(dict.fromkeys(names))


def evaluate_model(model: Classifier, data: ImageData, out_dir: Path, label: str, suites: list[str], shared: dict,
                   **options) -> dict:
    """Run ``suites`` on one loaded model and its data; ``options`` are ``EvalContext`` fields."""
    ctx = EvalContext(model, data, out_dir, label, shared=shared, **options)
    if getattr(model, "checkpoint_path", None):
        metrics = {"checkpoint": model.checkpoint_path, "run_dir": str(Path(model.checkpoint_path).parent.parent)}
    else:  # a model never saved (jemkit.wrap): named by where it came from
        metrics = {"checkpoint": model.record.get("source")}
    metrics["dataset"] = ctx.data.name
    for name in tqdm(suites, desc=f"eval ({label})", disable=not ctx.progress):
        metrics.update(SUITES[name](ctx))
    return metrics


def evaluate(
    checkpoint: str | Path | Classifier,
    out_dir: str | Path,
    *,
    baseline: str | Path | Classifier | None = None,
    suites: list[str] = DEFAULT_SUITES,
    device: str = "auto",
    fid_reference: str | Path | Classifier | None = None,
    inception: bool = True,
    data: ImageData | None = None,
    ood: dict[str, str] | None = None,
    **options,
) -> dict:
    """Run ``suites`` on ``checkpoint`` (and ``baseline``); write ``out_dir/metrics.json``; return it.

    ``checkpoint``, ``baseline`` and ``fid_reference`` are checkpoint paths or ``Classifier`` objects
    (``jemkit.load`` / ``jemkit.wrap``). Each model is scored on ``data`` when given, else on the
    dataset its record names. ``ood`` adds the user's OOD sets (name → ``npz:FILE`` / ``imagefolder:DIR``)
    beside the built-in ones.
    Feature FID uses ``fid_reference`` (a classifier on the same data), else the baseline, else the
    model itself; both models are scored in the same reference's feature space.
    Inception FID runs when ``inception`` is set, the weights are installed and the run is not quick.
    ``options`` are ``EvalContext`` fields (``quick``, ``seed``, ``n_ood``, ``options`` per suite, …).
    """
    suites = check_suites(list(suites))
    _check_options(options)
    for source in [checkpoint, baseline, fid_reference]:
        if source is not None and not isinstance(source, Classifier):
            resolve_checkpoint(source)  # fail before anything is written
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"--out {out_dir} is a file, not a directory")
    dev = resolve_device(device)
    model = _load(checkpoint, dev)
    model_data = _data_for(model, data).to(dev)
    extra = {name: load_ood_set(spec, like=model_data, name=name) for name, spec in (ood or {}).items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    shared: dict = {}
    if "samples" in suites:
        shared.update(_fid_extractors(fid_reference or baseline or checkpoint, inception and not options.get("quick"), dev))
    metrics = evaluate_model(model, model_data, out_dir, "model", suites, shared, ood_extra=extra, **options)
    if baseline is not None:
        base = _load(baseline, dev)
        metrics["baseline"] = evaluate_model(base, _data_for(base, data).to(dev), out_dir, "baseline", suites, shared,
                                             ood_extra=extra, **options)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _load(source: str | Path | Classifier, device: torch.device) -> Classifier:
    """A checkpoint path loaded, or a ``Classifier`` moved to ``device``, in eval mode."""
    if isinstance(source, Classifier) and not hasattr(source, "record"):
        raise ValueError("a Classifier to evaluate needs its record: make it with jemkit.wrap or jemkit.load")
    return source.to(device).eval() if isinstance(source, Classifier) else load(source, device=device)


def _data_for(model: Classifier, data: ImageData | None) -> ImageData:
    """``data`` if given (checked against the model's input and classes), else the dataset of the model's record."""
    if data is None:
        if "dataset" in model.record and model.record["dataset"] is None:  # jemkit.wrap's record
            raise ValueError(f"{model.record.get('source', 'the model')} names no dataset: pass data= (CLI: --data)")
        return dataset_of(model.record)
    if tuple(data.shape) != tuple(model.input_shape):
        raise ValueError(f"{data.name} has images {'x'.join(map(str, data.shape))}, the model takes "
                         f"{'x'.join(map(str, model.input_shape))}")
    if data.num_classes != model.num_classes:
        raise ValueError(f"{data.name} has {data.num_classes} classes, the model {model.num_classes}")
    return data


def _check_options(options: dict) -> None:
    """Refuse option values no suite can run with, before anything is loaded or written."""
    for suite in options.get("options", {}):
        if suite not in TAKE_OPTIONS:
            raise ValueError(f"suite '{suite}' takes no options{closest(suite, TAKE_OPTIONS)}; suites with options: "
                             f"{', '.join(TAKE_OPTIONS)}")
    for norm, eps in options.get("options", {}).get("robustness", {}).items():
        if norm.endswith("_eps") and any(e < 0 for e in eps):
            raise ValueError(f"robustness {norm} must be >= 0, got {list(eps)}")
    if options.get("n_ood", 1) <= 0:
        raise ValueError(f"n_ood must be > 0, got {options['n_ood']}")


def _fid_extractors(reference: str | Path | Classifier, inception: bool, device: torch.device) -> dict:
    """The samples suite's FID extractors, shared by model and baseline: ``feature`` in the space of the
    ``reference`` classifier (named by its record path, or its source for an unsaved model), ``inception``
    if asked for and installed."""
    if isinstance(reference, Classifier):
        model, name = reference, getattr(reference, "checkpoint_path", None) or reference.record.get("source")
    else:
        model, name = load(reference, device=device), str(resolve_checkpoint(reference))
    try:
        feature = feature_fid_extractor(model, name)
    except ValueError:  # a net whose logits do not come from a final nn.Linear
        log.warning("feature FID skipped: the final layer of %s is not an nn.Linear giving the logits; "
                    "name a jemkit classifier of the same data as the FID reference (--fid-reference)", name)
        feature = None
    return {"feature": feature, "inception": inception_fid_extractor(device) if inception else None}
