"""`jemkit sample` (jemkit/draw.py) starts fresh chains where the checkpoint's training started them."""
import pytest
import torch

import jemkit
from jemkit.cli import main
from jemkit.config import load_preset
from jemkit.data import load_dataset
from jemkit.draw import classifier_samples
from jemkit.sampling import fresh_sampler_config
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


def test_init_chooses_where_chains_start(runs):
    """--init overrides the training init: uniform noise, one Gaussian, class Gaussians, held-out images of the class, the buffer."""
    data = load_dataset("digits")
    model, g = jemkit.load(runs / "uniform"), torch.Generator().manual_seed(0)
    y = torch.full((40,), 5)
    x, how = classifier_samples(model, 40, y=y, steps=0, generator=g, init="data")
    assert "held-out test images" in how
    test_5 = data.x_test[data.y_test == 5].flatten(1)
    assert all((test_5 == row).all(1).any() for row in x.flatten(1))  # each start is a class-5 test image
    x, how = classifier_samples(model, 500, y=torch.full((500,), 3), steps=0, generator=g, init="class_gaussian")
    assert "class Gaussians" in how and (x.mean(0) - data.x_train[data.y_train == 3].mean(0)).abs().mean() < 0.1
    x, how = classifier_samples(model, 500, y=torch.full((500,), 3), steps=0, generator=g, init="gaussian")
    assert "a Gaussian" in how and (x.mean(0) - data.x_train.mean(0)).abs().mean() < 0.1  # all classes pooled
    assert (x.mean(0) - data.x_train[data.y_train == 3].mean(0)).abs().mean() > 0.2
    x, how = classifier_samples(model, 30, steps=0, generator=g, init="buffer")
    buffer = jemkit.checkpoint.load_buffer(model.checkpoint_path).flatten(1)
    assert "replay buffer" in how and all((buffer == row).all(1).any() for row in x.flatten(1))
    x, how = classifier_samples(jemkit.load(runs / "class_gaussian"), 2000, steps=0, generator=g, init="uniform")
    assert "U(-1, 1)" in how and x.std().item() == pytest.approx(3 ** -0.5, abs=0.01)


def test_init_errors_are_one_line(runs, tmp_path, capsys):
    out = str(tmp_path / "s.png")
    with pytest.raises(SystemExit):
        main(["sample", str(runs / "uniform"), "--out", out, "--init", "buffers"])
    assert "invalid choice: 'buffers'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown --init 'gaus'"):
        jemkit.draw.draw(runs / "uniform", out, 4, init="gaus")


def test_fresh_chains_run_the_configs_fresh_steps_unless_told(runs):
    """sampler.fresh_steps sets the length of fresh chains (jemkit sample, samples suite); --steps overrides it;
    0 keeps the training sampler's steps."""
    model = jemkit.load(runs / "uniform")
    assert fresh_sampler_config(model.record).steps == 2  # fresh_steps 0: the training steps
    model.record["config"]["sampler"]["fresh_steps"] = 7
    assert fresh_sampler_config(model.record).steps == 7
    assert fresh_sampler_config(model.record, steps=3).steps == 3
    _, how = classifier_samples(model, 4, generator=torch.Generator().manual_seed(0))
    assert "7 sgld steps" in how


def test_fresh_steps_must_not_be_negative():
    with pytest.raises(ValueError, match="fresh_steps"):
        load_preset("digits-jem", ["sampler.fresh_steps=-1"])
