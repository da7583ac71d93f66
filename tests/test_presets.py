"""Every preset trains two steps through the CLI, on tiny files the test writes in its dataset's real format.

Generic over ``preset_names()``: a preset added later is covered as long as its dataset is embedded
(digits, 2-D toys) or has a writer in ``test_loaders.FAKERS``; any other dataset is skipped with the reason.
"""
import pytest

from jemkit.cli import main
from jemkit.config import SCORE_OBJECTIVES, load_preset, preset_names
from jemkit.data import DatasetNotFound, load_dataset
from test_loaders import FAKERS, fake_dataset, isolate

TINY = ["train.steps=2", "train.log_every=1", "train.eval_every=2", "train.sample_every=2", "buffer.size=100",
        "data.batch_size=16", "model.width=8", "model.depth=10", "model.widen=1", "data.download=false",
        "score.sampler_steps=2"]


RGB32 = {"cifar10", "cifar100", "svhn", "celeba"}  # 3×32×32: a WRN, and JEM++'s init fits 3072-d Gaussians (~15 s)


def presets():
    return [pytest.param(n, marks=pytest.mark.slow) if load_preset(n).data.name in RGB32 else n for n in preset_names()]


@pytest.mark.parametrize("name", presets())
def test_preset_trains_two_steps(name, tmp_path, monkeypatch, capsys):
    isolate(monkeypatch, tmp_path)
    root = tmp_path / "data"
    dataset = load_preset(name).data.name
    if dataset in FAKERS:
        fake_dataset(dataset, root, monkeypatch)
    else:
        try:
            load_dataset(dataset, root=str(root), download=False)
        except DatasetNotFound:
            pytest.skip(f"preset {name}: the test cannot fake the files of dataset '{dataset}'")
    out = tmp_path / "run"
    sets = TINY + [f"data.root={root}"]
    if load_preset(name).data.labels_per_class:  # a semi-supervised preset: the tiny files hold a few images per class
        sets.append("data.labels_per_class=2")
    rc = main(["train", "--preset", name, "--out", str(out), "--quiet", *[a for s in sets for a in ("--set", s)]])
    assert rc == 0, capsys.readouterr().err
    objective = load_preset(name).train.objective
    expected = ("held-out score-matching loss" if objective in SCORE_OBJECTIVES else
                "unconditional EBM" if objective == "ebm" else "test accuracy")
    assert expected in capsys.readouterr().out
    steps = [int(p.stem.split("_")[1]) for p in (out / "checkpoints").glob("step_*.json")]
    assert max(steps) == 2 and (out / "config.yaml").is_file()
    assert (out / "metrics.csv").read_text().splitlines()[-1].startswith("2,")
