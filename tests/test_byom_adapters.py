"""Other libraries' architectures by name (``build_net("torchvision:NAME" | "timm:NAME", ...)``): shapes, the
small-input ResNet stem, other channel counts, and one clear line for what cannot be built."""
import sys

import pytest
import torch
from torch import nn

from jemkit.nets import arch_options, build_net


def test_resnet18_small_stem_on_fashion_mnist_shapes():
    net = build_net("torchvision:resnet18", 1, 10, stem="small")
    assert tuple(net.conv1.weight.shape) == (64, 1, 3, 3) and net.conv1.stride == (1, 1) and net.conv1.padding == (1, 1)
    assert isinstance(net.maxpool, nn.Identity)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert net.jemkit_build == {"arch": "torchvision:resnet18", "net_options": {"stem": "small"}}


def test_default_stem_keeps_torchvision_first_conv_with_other_channels():
    net = build_net("torchvision:resnet18", 1, 7)
    assert tuple(net.conv1.weight.shape) == (64, 1, 7, 7) and net.conv1.stride == (2, 2)
    assert isinstance(net.maxpool, nn.MaxPool2d)
    assert net.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 7)


def test_first_conv_of_a_non_resnet_takes_the_channels():
    net = build_net("torchvision:mobilenet_v3_small", 1, 4)
    assert net.features[0][0].in_channels == 1
    assert net.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 4)


def test_spectral_norm_is_recorded_with_the_options():
    net = build_net("torchvision:resnet18", 3, 2, stem="small", spectral_norm=True)
    assert net.jemkit_build["net_options"] == {"stem": "small", "spectral_norm": True}
    assert hasattr(net.conv1, "parametrizations")


@pytest.mark.parametrize("arch, options, message", [
    ("torchvision:resnet81", {}, "unknown torchvision model 'resnet81' \\(did you mean 'resnet18'"),
    ("torchvision:mobilenet_v3_small", {"stem": "small"}, "stem=small adapts ResNets"),
    ("torchvision:resnet18", {"stem": "tiny"}, "unknown stem 'tiny'"),
    ("torchvision:resnet18", {"width": 8}, "does not take \\['width'\\]"),
    ("keras:resnet18", {}, "unknown architecture 'keras:resnet18'"),
])
def test_what_cannot_be_built_says_why(arch, options, message):
    with pytest.raises(ValueError, match=message):
        build_net(arch, 3, 10, **options)


def test_timm_without_timm_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    with pytest.raises(ImportError, match="pip install timm"):
        build_net("timm:resnet18", 1, 10)


def test_timm_resnet_small_stem():
    pytest.importorskip("timm")
    net = build_net("timm:resnet18", 1, 10, stem="small")
    assert tuple(net.conv1.weight.shape) == (64, 1, 3, 3) and isinstance(net.maxpool, nn.Identity)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_arch_options_name_what_a_config_may_pass():
    assert arch_options("torchvision:resnet18") == {"stem"}
    assert {"width", "head_grid"} <= arch_options("cnn") and "num_classes" not in arch_options("cnn")
    with pytest.raises(ValueError, match="unknown architecture 'cnm' \\(did you mean 'cnn'"):
        arch_options("cnm")
