"""Architectures from other libraries by name: ``torchvision:NAME`` and ``timm:NAME`` (``build_net`` prefixes).

Weights are never downloaded here: torchvision models are built with ``weights=None``, timm models with
``pretrained=False``; a user's own weights load afterwards (``nets.weights.load_weights``).
Two adaptations users make for small images are options:
  * ``in_channels`` ≠ 3 replaces the first convolution by one taking ``in_channels`` (same width,
    kernel, stride and padding);
  * ``stem="small"`` (ResNets) makes the first convolution 3×3 with stride 1 and drops the max-pool,
    the CIFAR-style stem (He et al. 2016, §4.2) that keeps 28×28 / 32×32 inputs from shrinking to 7×7
    before the first block.
"""
from __future__ import annotations

from torch import nn

from ..utils import closest

STEMS = ("default", "small")
EXTERNAL_OPTIONS = ("stem",)  # what build_external takes besides the name, channels and classes


def torchvision_net(name: str, in_channels: int, num_classes: int, stem: str = "default") -> nn.Module:
    """``torchvision.models.get_model(name, weights=None, num_classes=num_classes)``, adapted."""
    import torchvision

    names = torchvision.models.list_models()
    if name not in names:
        raise ValueError(f"unknown torchvision model '{name}'{closest(name, names)}; see torchvision.models.list_models()")
    net = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if in_channels != 3:
        replace_first_conv(net, in_channels)
    return adapt_stem(net, stem, f"torchvision:{name}")


def timm_net(name: str, in_channels: int, num_classes: int, stem: str = "default") -> nn.Module:
    """``timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)``, adapted."""
    try:
        import timm
    except ImportError:
        raise ImportError(f"timm:{name} needs timm: pip install timm") from None
    if not timm.is_model(name):
        raise ValueError(f"unknown timm model '{name}'; see timm.list_models()")
    net = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)
    return adapt_stem(net, stem, f"timm:{name}")


LIBRARIES = {"torchvision": torchvision_net, "timm": timm_net}


def build_external(arch: str, in_channels: int, num_classes: int, **options) -> nn.Module:
    """``LIBRARY:NAME`` → that library's model; options other than ``stem`` are an error."""
    library, _, name = arch.partition(":")
    if library not in LIBRARIES or not name:
        raise ValueError(f"unknown architecture '{arch}': external ones are {' or '.join(f'{k}:NAME' for k in LIBRARIES)}")
    unknown = set(options) - set(EXTERNAL_OPTIONS)
    if unknown:
        raise ValueError(f"architecture '{arch}' does not take {sorted(unknown)}; it takes {[*EXTERNAL_OPTIONS, 'spectral_norm']}")
    return LIBRARIES[library](name, in_channels, num_classes, **options)


def first_conv(net: nn.Module) -> tuple[str, nn.Conv2d]:
    """(qualified name, module) of the first ``nn.Conv2d`` in definition order: the stem of a CNN."""
    for qualified, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            return qualified, module
    raise ValueError(f"{type(net).__name__} has no Conv2d layer to adapt")


def replace_first_conv(net: nn.Module, in_channels: int, kernel_size: int | None = None, stride: int | None = None) -> None:
    """Swap the first conv for a fresh one taking ``in_channels`` (kernel/stride/padding kept unless given)."""
    qualified, old = first_conv(net)
    k = kernel_size or old.kernel_size
    padding = k // 2 if kernel_size else old.padding
    new = nn.Conv2d(in_channels, old.out_channels, k, stride=stride or old.stride, padding=padding,
                    bias=old.bias is not None)
    _set_submodule(net, qualified, new)


def adapt_stem(net: nn.Module, stem: str, arch: str) -> nn.Module:
    """``stem="small"``: first conv 3×3 stride 1 (padding 1) and no max-pool (ResNets: ``conv1`` + ``maxpool``)."""
    if stem not in STEMS:
        raise ValueError(f"unknown stem '{stem}'; choose one of {', '.join(STEMS)}")
    if stem == "default":
        return net
    if not isinstance(getattr(net, "conv1", None), nn.Conv2d) or not hasattr(net, "maxpool"):
        raise ValueError(f"stem=small adapts ResNets (a conv1 and a maxpool); {arch} has neither")
    replace_first_conv(net, net.conv1.in_channels, kernel_size=3, stride=1)
    net.maxpool = nn.Identity()
    return net


def _set_submodule(net: nn.Module, qualified: str, module: nn.Module) -> None:
    parent, _, leaf = qualified.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, leaf, module)
