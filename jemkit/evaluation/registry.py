"""Evaluation suites by name, run on a checkpoint (and its baseline) into one metrics.json.

Each suite is ``suite(ctx: EvalContext) -> dict`` of nested metrics, and may write PNGs into the
output directory (file names prefixed ``baseline_`` for the baseline). ``evaluate`` merges them:
the model's metrics at the top level of metrics.json, the baseline's under ``baseline``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..checkpoint import load, resolve_checkpoint
from ..data import dataset_of
from ..utils import closest, resolve_device
from .calibration import suite_calibration
from .classification import suite_accuracy
from .context import EvalContext
from .distal import suite_distal
from .fid import feature_fid_extractor, inception_fid_extractor
from .inpainting import suite_inpainting
from .likelihood import suite_likelihood
from .ood import suite_ood
from .robustness import suite_robustness
from .samples import suite_samples

SUITES = {"accuracy": suite_accuracy, "calibration": suite_calibration, "ood": suite_ood, "samples": suite_samples,
          "inpainting": suite_inpainting, "distal": suite_distal, "likelihood": suite_likelihood,
          "robustness": suite_robustness}
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
    """Run ``suites`` on one checkpoint; ``options`` are ``EvalContext`` fields."""
    model = load(checkpoint, device=device)
    ctx = EvalContext(model, dataset_of(model.record).to(device), out_dir, label, shared=shared, **options)
    metrics = {"checkpoint": model.checkpoint_path, "run_dir": str(Path(model.checkpoint_path).parent.parent),
               "dataset": ctx.data.name}
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
    Inception FID runs when ``inception`` is set, the weights are installed and the run is not quick.
    ``options`` are ``EvalContext`` fields (``quick``, ``seed``, ``n_ood``, ``options`` per suite, …).
    """
    suites = check_suites(list(suites))
    _check_options(options)
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
        shared.update(_fid_extractors(fid_reference or baseline or checkpoint, inception and not options.get("quick"), dev))
    metrics = evaluate_model(checkpoint, out_dir, "model", suites, dev, shared, **options)
    if baseline is not None:
        metrics["baseline"] = evaluate_model(baseline, out_dir, "baseline", suites, dev, shared, **options)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _check_options(options: dict) -> None:
    """Refuse option values no suite can run with, before anything is loaded or written."""
    for norm, eps in options.get("options", {}).get("robustness", {}).items():
        if norm.endswith("_eps") and any(e < 0 for e in eps):
            raise ValueError(f"robustness {norm} must be >= 0, got {list(eps)}")
    if options.get("n_ood", 1) <= 0:
        raise ValueError(f"n_ood must be > 0, got {options['n_ood']}")


def _fid_extractors(reference: str | Path, inception: bool, device: torch.device) -> dict:
    """The samples suite's FID extractors, shared by model and baseline: ``feature`` in the space of the
    ``reference`` classifier (named by its record path), ``inception`` if asked for and installed."""
    name = str(resolve_checkpoint(reference))
    return {"feature": feature_fid_extractor(load(reference, device=device), name),
            "inception": inception_fid_extractor(device) if inception else None}
