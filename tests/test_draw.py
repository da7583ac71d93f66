"""`jemkit sample` (jemkit/draw.py) starts fresh chains where the checkpoint's training started them."""
import pytest
import torch

import jemkit
from jemkit.cli import main
from jemkit.config import load_preset
from jemkit.data import load_dataset
from jemkit.draw import classifier_samples
from jemkit.training import train

TINY = ["train.steps=2", "model.width=4", "buffer.size=100", "sampler.steps=2", "train.tensorboard=false"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("draw")
    for init in ("uniform", "class_gaussian"):
        train(load_preset("digits-jem", [*TINY, f"buffer.init={init}"]), root / init, progress=False)
    return root


def test_uniform_init_checkpoint_starts_from_uniform_noise(runs):
    x, how = classifier_samples(jemkit.load(runs / "uniform"), 2000, steps=0, generator=torch.Generator().manual_seed(0))
    assert "U(-1, 1)" in how
    assert abs(x.mean().item()) < 0.01 and x.std().item() == pytest.approx(3 ** -0.5, abs=0.01)


def test_class_gaussian_checkpoint_starts_from_the_class_gaussians(runs):
    data = load_dataset("digits")
    y = torch.full((500,), 3)
    x, how = classifier_samples(jemkit.load(runs / "class_gaussian"), 500, y=y, steps=0,
                                generator=torch.Generator().manual_seed(0))
    assert "class Gaussians" in how
    class_mean = data.x_train[data.y_train == 3].mean(0)
    other_mean = data.x_train[data.y_train == 0].mean(0)
    assert (x.mean(0) - class_mean).abs().mean() < 0.1  # the class-3 Gaussian (clamped to [-1, 1])
    assert (x.mean(0) - class_mean).abs().mean() < 0.5 * (x.mean(0) - other_mean).abs().mean()


def test_jemkit_sample_writes_a_grid_and_says_where_chains_started(runs, tmp_path, capsys):
    out = tmp_path / "s.png"
    assert main(["sample", str(runs / "class_gaussian"), "--out", str(out), "--class", "7", "-n", "8"]) == 0
    assert out.is_file() and "class Gaussians" in capsys.readouterr().out
    assert main(["sample", str(runs / "uniform"), "--out", str(out), "--class", "10"]) == 2
    assert "--class must be in [0, 9]" in capsys.readouterr().err
