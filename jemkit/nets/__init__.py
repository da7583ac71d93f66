"""Backbones, selected by name: ``build_net(arch, in_channels, num_classes, **options)``."""
from __future__ import annotations

import inspect

from torch import nn

from ..utils import closest
from .small import SmallCNN
from .wideresnet import WideResNet

NETS: dict[str, type[nn.Module]] = {"cnn": SmallCNN, "wrn": WideResNet}


def build_net(arch: str, in_channels: int, num_classes: int, **options) -> nn.Module:
    """Instantiate a backbone; options that the architecture does not take are an error."""
    if arch not in NETS:
        raise ValueError(f"unknown architecture '{arch}'{closest(arch, NETS)}; choose one of {sorted(NETS)}")
    cls = NETS[arch]
    accepted = set(inspect.signature(cls).parameters)
    unknown = set(options) - accepted
    if unknown:
        raise ValueError(f"architecture '{arch}' does not take {sorted(unknown)}; it takes {sorted(accepted)}")
    return cls(in_channels=in_channels, num_classes=num_classes, **options)


__all__ = ["NETS", "build_net", "SmallCNN", "WideResNet"]
