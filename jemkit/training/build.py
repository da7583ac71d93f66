"""What a run is built from: the model its config describes (its input convention, its pretrained weights),
the optimizer, the weight average, and the record every checkpoint of the run carries."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..checkpoint import load, load_score_model
from ..config import SCORE_OBJECTIVES, Config, OptimConfig
from ..data import ImageData
from ..model import MODEL_INPUT, Classifier, InputConvention, ScoreModel, with_input_convention
from ..nets import arch_options, build_net, load_weights
from ..nets.weights import mismatch

INIT_KINDS = ("checkpoint", "weights")  # model.init prefixes


def net_options(cfg: Config) -> dict:
    """The model-config fields that the chosen architecture takes."""
    accepted = arch_options(cfg.model.arch) | {"spectral_norm"}
    return {k: v for k, v in dataclasses.asdict(cfg.model).items() if k in accepted}


def build_model(cfg: Config, data: ImageData) -> Classifier | ScoreModel:
    """The net ``cfg.model`` describes, behind the input convention ``model.normalize`` gives (as ``jemkit.wrap``)."""
    net = build_net(cfg.model.arch, data.shape[0], data.num_classes, **net_options(cfg))
    convention = input_convention(cfg.model.normalize, data.shape[0])
    preprocessing = {**data.preprocessing, "train_input_noise": cfg.data.input_noise, **convention}
    if cfg.train.objective in SCORE_OBJECTIVES:
        if convention:
            raise ValueError("model.normalize is a classifier's input convention; score networks take x in [-1, 1]")
        return ScoreModel(net, data.shape, preprocessing)
    return Classifier(with_input_convention(net, preprocessing), data.shape, data.num_classes, preprocessing)


def input_convention(values: list[float], channels: int) -> dict:
    """``model.normalize`` ([mean, std], or C means then C stds) as the preprocessing entries ``jemkit.wrap`` records:
    the net sees x01 = (x + 1)/2, then (x01 − mean)/std per channel (``model.InputConvention``; ``jemkit.load``
    restores it from the record). {} when ``values`` is empty."""
    if not values:
        return {}
    half = len(values) // 2
    if len(values) % 2 or half not in (1, channels):
        raise ValueError(f"model.normalize needs [mean, std] or {channels} means then {channels} stds, got {values}")
    mean, std = values[:half] * (channels // half), values[half:] * (channels // half)
    if min(std) <= 0:
        raise ValueError(f"model.normalize stds must be > 0, got {std}")
    return {"model_input": MODEL_INPUT, "normalize": {"mean": mean, "std": std}}


def parse_init(init: str) -> tuple[str, Path]:
    """``model.init`` → (kind, path): ``checkpoint:PATH`` or ``weights:PATH``; a bare PATH is a checkpoint."""
    kind, sep, path = init.partition(":")
    if not sep or kind not in INIT_KINDS:
        kind, path = "checkpoint", init
    if not path:
        raise ValueError(f"model.init={init} names no file after '{kind}:'")
    return kind, Path(path)


def load_init(model: Classifier | ScoreModel, cfg: Config) -> None:
    """``model.init``'s pretrained weights into the freshly built ``model``, every key and shape checked first.

    ``checkpoint:PATH``: the weights ``jemkit.load`` gives (the weight average when the checkpoint has one),
    whose input convention must be ``model.normalize``'s; ``weights:PATH``: a state_dict of the bare net
    (``nets.load_weights``: .safetensors, or .pt read with ``weights_only=True``).
    """
    kind, path = parse_init(cfg.model.init)
    if kind == "weights":
        load_weights(bare_net(model), path, describe_net(cfg, model))
        return
    loader = load_score_model if cfg.train.objective in SCORE_OBJECTIVES else load
    pretrained = loader(path)
    theirs, ours = (m.preprocessing.get("normalize") for m in (pretrained, model))
    if theirs != ours:
        raise ValueError(f"model.init {path} sees {_convention(theirs)}, but model.normalize={cfg.model.normalize} "
                         f"makes the net see {_convention(ours)}: set model.normalize={_flat(theirs)}")
    problem = mismatch(model.state_dict(), pretrained.state_dict())
    if problem:
        raise ValueError(f"model.init {path} does not fit {describe_net(cfg, model)}: {problem}")
    model.load_state_dict(pretrained.state_dict())


def bare_net(model: Classifier | ScoreModel) -> torch.nn.Module:
    """The backbone itself, without the input convention in front of it."""
    return model.net.module if isinstance(model.net, InputConvention) else model.net


def describe_net(cfg: Config, model: Classifier | ScoreModel) -> str:
    """E.g. "cnn with 10 classes and input 1x8x8", for errors."""
    classes = f" with {model.num_classes} classes" if isinstance(model, Classifier) else ""
    return f"{cfg.model.arch}{classes} and input {'x'.join(map(str, model.input_shape))}"


def _convention(normalize: dict | None) -> str:
    return f"((x+1)/2 - mean)/std, mean {normalize['mean']}, std {normalize['std']}" if normalize else "x in [-1, 1] as is"


def _flat(normalize: dict | None) -> list[float]:
    return [*normalize["mean"], *normalize["std"]] if normalize else []


def build_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def build_ema(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """Exponential moving average of the weights and buffers, θ̄ ← decay·θ̄ + (1 − decay)·θ after every
    optimizer step (the first update copies θ); None when ``decay`` is 0."""
    if decay == 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def checkpoint_record(cfg: Config, data: ImageData, model: Classifier | ScoreModel) -> dict:
    return {
        "arch": cfg.model.arch,
        "net_options": net_options(cfg),
        "input_shape": list(model.input_shape),
        "num_classes": data.num_classes,
        "class_names": data.class_names,
        "dataset": data.name,
        "preprocessing": model.preprocessing,
        "temperature": cfg.model.temperature,
        "objective": cfg.train.objective,
        "config": cfg.to_dict(),
    }
