"""Backbones, selected by name: ``build_net(arch, in_channels, num_classes, **options)``.

Names are jemkit's own (``NETS``) or another library's, ``torchvision:NAME`` / ``timm:NAME`` (``external``).
"""
from __future__ import annotations

import inspect

from torch import nn

from ..utils import closest
from .external import EXTERNAL_OPTIONS, LIBRARIES, build_external
from .score import ScoreCNN, ScoreMLP
from .small import SmallCNN
from .weights import load_torchscript, load_weights, read_state_dict
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
    """Instantiate a backbone (optionally spectrally normalized); options the architecture does not take are an error.

    The net remembers how it was built (``.jemkit_build``: arch and options), so ``jemkit.wrap`` can
    record it and ``jemkit.load`` rebuild it.
    """
    build = {"arch": arch, "net_options": {**options, **({"spectral_norm": True} if spectral_norm else {})}}
    net = build_external(arch, in_channels, num_classes, **options) if is_external(arch) else \
        _build_own(arch, in_channels, num_classes, **options)
    net = add_spectral_norm(net) if spectral_norm else net
    net.jemkit_build = build
    return net


def arch_options(arch: str) -> set[str]:
    """The option names ``build_net`` takes for ``arch`` (besides ``spectral_norm``): what a config may pass on."""
    if is_external(arch):
        return set(EXTERNAL_OPTIONS)
    if arch not in NETS:
        raise ValueError(f"unknown architecture '{arch}'{closest(arch, NETS)}; choose one of {sorted(NETS)} "
                         "or torchvision:NAME / timm:NAME")
    return set(inspect.signature(NETS[arch]).parameters) - {"in_channels", "num_classes"}


def is_external(arch: str) -> bool:
    """Whether ``arch`` names another library's model (``torchvision:NAME``, ``timm:NAME``)."""
    return arch.partition(":")[0] in LIBRARIES and ":" in arch


def _build_own(arch: str, in_channels: int, num_classes: int, **options) -> nn.Module:
    accepted = arch_options(arch)
    unknown = set(options) - accepted
    if unknown:
        raise ValueError(f"architecture '{arch}' does not take {sorted(unknown)}; it takes {sorted(accepted)}")
    cls = NETS[arch]
    if "num_classes" in inspect.signature(cls).parameters:
        options["num_classes"] = num_classes
    return cls(in_channels=in_channels, **options)


__all__ = ["NETS", "arch_options", "build_net", "is_external", "load_torchscript", "load_weights", "read_state_dict", "ScoreCNN", "ScoreMLP", "SmallCNN", "WideResNet"]
