"""Another library's architecture as a config's model.arch: trains, saves, and loads back."""
import pytest
import torch

import jemkit
from jemkit.config import ConfigError, load_preset
from jemkit.training import train


def test_a_torchvision_architecture_trains_from_a_preset(tmp_path):
    cfg = load_preset("digits-baseline", ["model.arch=torchvision:resnet18", "model.stem=small", "train.steps=2",
                                          "train.tensorboard=false", "train.eval_every=2"])
    train(cfg, tmp_path / "run", progress=False)
    model = jemkit.load(tmp_path / "run")
    assert model.record["net_options"] == {"stem": "small", "spectral_norm": False}
    with torch.no_grad():
        assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


@pytest.mark.parametrize("override, message", [("model.arch=resnet18", "model.arch: unknown value 'resnet18'"),
                                               ("model.stem=tiny", "model.stem: unknown value 'tiny'")])
def test_unknown_architectures_and_stems_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_preset("digits-baseline", [override])
