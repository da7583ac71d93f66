"""Fine-tuning a pretrained classifier as a JEM (``jemkit finetune``; JEM++-style recipe: preset ``finetune-jempp``).

The classifier is a jemkit checkpoint, or another library's architecture (``torchvision:NAME`` / ``timm:NAME``)
plus a weights file. ``finetune_config`` makes the run's config: the preset, the model's architecture, net
options and input convention (``model.normalize``), ``model.init`` naming its weights, the data. ``finetune``
saves the model as it came to ``RUN/pretrained`` (the baseline of ``jemkit eval RUN --baseline RUN/pretrained``)
and trains; the run's step-0 checkpoint holds the same weights.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import is_score_record, read_record, resolve_checkpoint, save_model
from ..config import Config, apply_overrides, config_from_dict, load_preset, validate
from ..data import dataset_from_config
from ..model import Classifier, wrap
from ..nets import is_external
from .build import bare_net, build_model, input_convention, load_init, parse_init
from .rundir import prepare_run_dir
from .trainer import TrainResult, train

DATA_IDENTITY = ("name", "root", "shape", "test_fraction", "split_seed")  # what a checkpoint's data section passes on


@dataclass
class Pretrained:
    """The classifier a fine-tuning run starts from: a jemkit ``checkpoint`` (file or run directory), or
    ``model`` (``torchvision:NAME`` / ``timm:NAME``) with its ``weights`` file, ``stem`` and ``normalize``
    (its input convention, ``[mean, std]`` or C means then C stds, as ``model.normalize``)."""

    checkpoint: str | None = None
    model: str | None = None
    weights: str | None = None
    stem: str | None = None
    normalize: list[float] | None = None


def finetune_config(source: Pretrained, preset: str = "finetune-jempp", data: str | None = None,
                    overrides: list[str] = ()) -> Config:
    """The preset, then the classifier's model fields and data (``data`` replaces a checkpoint's dataset), then
    ``overrides``; validated."""
    if (source.checkpoint is None) == (source.model is None):
        raise ValueError("give either a CHECKPOINT or --model (exactly one)")
    fields = _checkpoint_fields(source, data) if source.checkpoint is not None else _model_fields(source, data)
    d = load_preset(preset).to_dict()
    for section, values in fields.items():
        d[section].update(values)
    return validate(apply_overrides(config_from_dict(d), list(overrides)))


def _checkpoint_fields(source: Pretrained, data: str | None) -> dict:
    """A jemkit checkpoint's architecture, net options, input convention and (unless ``data``) dataset."""
    given = [f"--{f}" for f in ("weights", "stem", "normalize") if getattr(source, f) is not None]
    if given:
        raise ValueError(f"{', '.join(given)} describe a --model; a checkpoint records its own")
    record_path = resolve_checkpoint(source.checkpoint)
    record = read_record(record_path, verify=False)  # verified when its weights load
    if is_score_record(record):
        raise ValueError(f"{record_path} is a score model (objective '{record['objective']}'); finetune continues classifiers")
    if data is None and record.get("dataset") is None:
        raise ValueError(f"{record_path} records no dataset (a model saved by jemkit.save_model): give --data")
    norm = (record.get("preprocessing") or {}).get("normalize")
    model = {"arch": record["arch"], **record["net_options"], "init": f"checkpoint:{record_path.resolve()}",
             "normalize": [*norm["mean"], *norm["std"]] if norm else []}
    saved = record["config"]["data"]
    return {"model": model, "data": {"name": data} if data else {k: saved[k] for k in DATA_IDENTITY if k in saved}}


def _model_fields(source: Pretrained, data: str | None) -> dict:
    """``torchvision:NAME`` / ``timm:NAME`` with its weights file, stem and input convention, on ``data``."""
    if not is_external(source.model):
        raise ValueError(f"--model {source.model}: finetune rebuilds the net by name, so give torchvision:NAME or "
                         "timm:NAME (a TorchScript file cannot be trained here)")
    if source.weights is None:
        raise ValueError(f"--model {source.model} needs --weights (the pretrained state_dict to fine-tune)")
    if data is None:
        raise ValueError("--model needs --data (a built-in dataset, npz:FILE or imagefolder:DIR)")
    model = {"arch": source.model, "init": f"weights:{Path(source.weights).resolve()}",
             "normalize": source.normalize or [0.0, 1.0],  # as `jemkit eval --model`: (x+1)/2 in [0, 1] by default
             **({"stem": source.stem} if source.stem else {})}
    return {"model": model, "data": {"name": data}}


def pretrained_model(cfg: Config) -> Classifier:
    """The classifier ``model.init`` names, as it came: built and loaded as the run's step 0 (so a file that does
    not fit is refused here), with the record of the checkpoint it came from or of ``jemkit.wrap``, and the
    fine-tuning data in that record (``jemkit eval`` scores it on them)."""
    data = dataset_from_config(cfg.data)
    model = build_model(cfg, data)
    load_init(model, cfg)
    kind, path = parse_init(cfg.model.init)
    if kind == "checkpoint":
        model.record = read_record(resolve_checkpoint(path), verify=False)
    else:  # x in [-1, 1] as is: mean = std = 0.5 gives x back
        norm = input_convention(cfg.model.normalize, data.shape[0]).get("normalize") or {"mean": 0.5, "std": 0.5}
        model = wrap(bare_net(model), data.shape, data.num_classes, (norm["mean"], norm["std"]), data.class_names)
        model.record["source"] = f"{cfg.model.arch} + {path}"
    model.record.update(dataset=data.name, config={**model.record["config"], "data": dataclasses.asdict(cfg.data)})
    return model.eval()


def finetune(cfg: Config, run_dir: str | Path, *, overwrite: bool = False, resume: bool = False,
             progress: bool = True) -> TrainResult:
    """Save the model ``model.init`` names to ``run_dir/pretrained`` (a fresh run only), then ``train``.

    A directory holding another run is refused, and a weights file that does not fit the net is reported,
    before anything is written.
    """
    cfg, run_dir = validate(cfg), Path(run_dir)
    if not cfg.model.init:
        raise ValueError("finetune starts from pretrained weights: set model.init (checkpoint:PATH or weights:PATH)")
    resuming = not overwrite and prepare_run_dir(cfg, run_dir, overwrite=False, resume=resume)
    if not resuming and os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 writes it
        save_model(pretrained_model(cfg), run_dir / "pretrained", step=0)
    return train(cfg, run_dir, overwrite=overwrite, resume=resume, progress=progress)
