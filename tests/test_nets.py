import pytest
import torch

from jemkit.nets import build_net


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_small_cnn_shapes(shape, norm):
    net = build_net("cnn", shape[0], 10, width=8, norm=norm)
    assert net(torch.randn(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize("norm", ["none", "batch", "layer", "instance"])
def test_wrn_shapes_and_depth(norm):
    net = build_net("wrn", 3, 10, depth=10, widen=1, norm=norm, dropout=0.1)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 1 + 2 * 3  # stem + 2 per block, (10 − 4)/6 = 1 block per stage
    if norm == "none":
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_wrn_uses_leaky_relu_02():
    net = build_net("wrn", 3, 10, depth=10, widen=1)
    acts = [m for m in net.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert acts and all(a.negative_slope == 0.2 for a in acts)


@pytest.mark.parametrize("kwargs, match", [
    ({"arch": "resnet"}, "unknown architecture"),
    ({"arch": "wrn", "depth": 27}, "6n\\+4"),
    ({"arch": "cnn", "norm": "group"}, "unknown norm"),
    ({"arch": "cnn", "depth": 10}, "does not take"),
])
def test_bad_net_options(kwargs, match):
    args = dict(kwargs)
    arch = args.pop("arch")
    with pytest.raises(ValueError, match=match):
        build_net(arch, 1, 10, **args)


def test_small_cnn_skips_the_identity_pool_without_changing_the_function():
    """28×28 with head_grid=7: the last map is already 7×7, so the adaptive pool is skipped (same logits);
    other sizes still pool."""
    import torch

    from jemkit.nets import build_net

    torch.manual_seed(0)
    net = build_net("cnn", 1, 10, width=4, head_grid=7)
    for size in (28, 32):
        x = torch.randn(3, 1, size, size)
        pooled = net.head(net.pool(net.features(x)).flatten(1))
        assert torch.allclose(net(x), pooled, atol=1e-6)
