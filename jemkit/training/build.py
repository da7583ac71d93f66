"""What a run is built from: the model its config describes, the optimizer, the weight average,
and the record every checkpoint of the run carries."""
from __future__ import annotations

import dataclasses

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..config import SCORE_OBJECTIVES, Config, OptimConfig
from ..data import ImageData
from ..model import Classifier, ScoreModel
from ..nets import arch_options, build_net


def net_options(cfg: Config) -> dict:
    """The model-config fields that the chosen architecture takes."""
    accepted = arch_options(cfg.model.arch) | {"spectral_norm"}
    return {k: v for k, v in dataclasses.asdict(cfg.model).items() if k in accepted}


def build_model(cfg: Config, data: ImageData) -> Classifier | ScoreModel:
    net = build_net(cfg.model.arch, data.shape[0], data.num_classes, **net_options(cfg))
    preprocessing = {**data.preprocessing, "train_input_noise": cfg.data.input_noise}
    if cfg.train.objective in SCORE_OBJECTIVES:
        return ScoreModel(net, data.shape, preprocessing)
    return Classifier(net, data.shape, data.num_classes, preprocessing)


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
