"""Backbones, selected by name: ``build_net(arch, in_channels, num_classes, **options)``."""
from __future__ import annotations

import inspect

from torch import nn

from ..utils import closest
from .score import ScoreCNN, ScoreMLP
from .small import SmallCNN
from .wideresnet import WideResNet

# classifiers (x → logits) and noise-conditional score networks ((x, σ) → score, no num_classes)
NETS: dict[str, type[nn.Module]] = {"cnn": SmallCNN, "wrn": WideResNet, "score_mlp": ScoreMLP, "score_cnn": ScoreCNN}


def add_spectral_norm(net: nn.Module) -> nn.Module:
    """Spectral normalization (Miyato et al. 2018) on every conv and linear layer, as IGEBM uses."""
    from torch.nn.utils.parametrizations import spectral_norm

    for module in list(net.modules()):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            spectral_norm(module)
    return net


def build_net(arch: str, in_channels: int, num_classes: int, *, spectral_norm: bool = False, **options) -> nn.Module:
    """Instantiate a backbone (optionally spectrally normalized); options the architecture does not take are an error."""
    if arch not in NETS:
        raise ValueError(f"unknown architecture '{arch}'{closest(arch, NETS)}; choose one of {sorted(NETS)}")
    cls = NETS[arch]
    accepted = set(inspect.signature(cls).parameters)
    unknown = set(options) - accepted
    if unknown:
        raise ValueError(f"architecture '{arch}' does not take {sorted(unknown)}; it takes {sorted(accepted)}")
    if "num_classes" in accepted:
        options["num_classes"] = num_classes
    net = cls(in_channels=in_channels, **options)
    return add_spectral_norm(net) if spectral_norm else net


__all__ = ["NETS", "build_net", "ScoreCNN", "ScoreMLP", "SmallCNN", "WideResNet"]
