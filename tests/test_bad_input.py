"""Bad input: one clear line from the CLI (exit 2, no traceback), a clear exception from the API,
and no existing file overwritten or truncated."""
import hashlib
import json
from pathlib import Path

import pytest
import torch

import jemkit
from jemkit.cli import main
from jemkit.config import load_preset
from jemkit.data import DatasetNotFound, fashion_mnist, load_dataset
from jemkit.objectives import jem_hybrid
from jemkit.training import train

from test_data import make_fake_fmnist

TINY = ["train.steps=2", "model.width=8", "buffer.size=100", "sampler.steps=2"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A directory with a finished run, a second run, and plain files that bad commands must not touch."""
    root = tmp_path_factory.mktemp("ws")
    train(load_preset("digits-jem", TINY), root / "run", progress=False)
    (root / "notes.txt").write_text("keep me")
    (root / "empty").mkdir()
    (root / "badeval").mkdir()
    (root / "badeval" / "metrics.json").write_text('{"accuracy": 0.9')
    (root / "listeval").mkdir()
    (root / "listeval" / "metrics.json").write_text("[0.9]")
    (root / "junk.safetensors").write_bytes(b"not a checkpoint")
    torn = root / "torn" / "checkpoints"
    torn.mkdir(parents=True)
    (torn / "step_00000001.json").write_text('{"format": "jemkit-chec')
    mismatch = root / "mismatch"
    train(load_preset("digits-jem", TINY), mismatch, progress=False)
    for rec in (mismatch / "checkpoints").glob("*.json"):
        r = json.loads(rec.read_text())
        r["net_options"]["width"] = 16
        rec.write_text(json.dumps(r))
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def sets(*items):
    return [a for s in items for a in ("--set", s)]


CLI_CASES = [
    # (argv with {ws} for the workspace, expected fragment of the one-line error)
    ("train --preset digits-jm --out {ws}/new", "did you mean 'digits-jem'"),
    ("train --preset nope --out {ws}/new", "unknown preset 'nope'"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("optim.lrr=1")), "did you mean 'lr'"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("train.steps=abc")), "must be an integer"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("train.steps=-5")), "train.steps must be > 0"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("sampler.steps=-1")), "sampler.steps must be >= 0"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("buffer.reinit=1.5")), "buffer.reinit must be in [0, 1]"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("buffer.reinit=-0.1")), "buffer.reinit must be in [0, 1]"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("data.batch_size=0")), "data.batch_size must be > 0"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("optim.lr=-1")), "optim.lr must be >= 0"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("model.arch=resnt")), "model.arch: unknown value 'resnt'"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("model.norm=btch")), "did you mean 'batch'"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("sampler.name=sgdl")), "did you mean 'sgld'"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("data.name=cifar")), "data.name: unknown value 'cifar'"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("train.objective=jm")), "did you mean 'jem'"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("data.test_fraction=1.5")), "data.test_fraction must be in (0, 1)"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("model.dropout=1.0")), "model.dropout must be in [0, 1)"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("model.arch=wrn", "model.depth=27")), "6n+4"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("optim.decay_at=[1.5]")), "optim.decay_at"),
    ("train --preset digits-jem --out {ws}/new " + " ".join(sets("sampler.noise=-0.01")), "sampler.noise must be >= 0"),
    ("train --preset digits-jem --out {ws}/new --set noequals", "key.sub=value"),
    ("train --preset digits-baseline --out {ws}/run " + " ".join(sets(*TINY)), "holds another run"),
    ("train --preset digits-jem --out {ws}/notes.txt " + " ".join(sets(*TINY)), "is a file, not a directory"),
    ("eval {ws}/run --out {ws}/ev --suite acuracy", "did you mean 'accuracy'"),
    ("eval {ws}/nothing --out {ws}/ev", "does not exist"),
    ("eval {ws}/notes.txt --out {ws}/ev", "is not a jemkit checkpoint"),
    ("eval {ws}/junk.safetensors --out {ws}/ev", "is not a jemkit checkpoint"),
    ("eval {ws}/empty --out {ws}/ev", "no valid checkpoint"),
    ("eval {ws}/torn --out {ws}/ev", "no valid checkpoint"),
    ("eval {ws}/run --out {ws}/notes.txt", "is a file, not a directory"),
    ("eval {ws}/run --out {ws}/ev --n-ood 0", "n_ood must be > 0"),
    ("eval {ws}/run --out {ws}/ev --suite robustness --linf-eps 0,-0.1", "robustness linf_eps must be >= 0"),
    ("eval {ws}/run --out {ws}/ev --suite robustness --l2-eps=-1", "robustness l2_eps must be >= 0"),
    ("eval {ws}/mismatch --out {ws}/ev", "shape mismatch in"),
    ("sample {ws}/run --out {ws}/s.png --class 99", "--class must be in [0, 9]"),
    ("sample {ws}/run --out {ws}/s.png -n 0", "-n must be > 0"),
    ("sample {ws}/run --out {ws}/s.png --steps -3", "steps must be >= 0"),
    ("sample {ws}/nothing --out {ws}/s.png", "does not exist"),
    ("report {ws}/empty", "there is no evaluation in {ws}/empty (no metrics.json): run `jemkit eval CHECKPOINT --out {ws}/empty` first"),
    ("report {ws}/nothing", "there is no evaluation in {ws}/nothing"),
    ("report {ws}/badeval", "badeval/metrics.json is not a JSON evaluation record (Expecting"),
    ("report {ws}/listeval", "listeval/metrics.json is not a JSON evaluation record (a list, not an object)"),
    ("demo --out {ws}/demo --set train.stepz=2", "did you mean 'steps'"),
]


@pytest.mark.parametrize("argv, message", CLI_CASES, ids=[c[0].split(" --out")[0][:40] + f"-{i}" for i, c in enumerate(CLI_CASES)])
def test_cli_bad_input(workspace, argv, message, capsys):
    before = snapshot(workspace)
    assert main(argv.format(ws=workspace).split()) == 2
    err = capsys.readouterr().err.strip()
    assert message.format(ws=workspace) in err, err
    assert err.startswith("jemkit: error:") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert snapshot(workspace) == before, "no existing file may be changed by a refused command"
    assert not (workspace / "new").exists()


@pytest.fixture(scope="module")
def model(workspace):
    return jemkit.load(workspace / "run")


@pytest.mark.parametrize("x, error, message", [
    (torch.zeros(2, 3, 8, 8), ValueError, r"expected images of shape \(N, 1, 8, 8\)"),
    (torch.zeros(2, 1, 28, 28), ValueError, r"\(N, 1, 8, 8\)"),
    (torch.zeros(1, 8, 8), ValueError, r"\(N, 1, 8, 8\)"),
    (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), TypeError, "floating-point"),
    (torch.full((2, 1, 8, 8), float("nan")), ValueError, "NaN or Inf"),
    (torch.zeros(2, 1, 8, 8).index_fill_(0, torch.tensor([1]), float("inf")), ValueError, "NaN or Inf"),
])
def test_api_bad_images(model, x, error, message):
    with pytest.raises(error, match=message):
        model(x)


def test_api_labels_out_of_range(tmp_path, monkeypatch):
    import numpy as np
    from test_data import write_idx

    monkeypatch.setenv("JEMKIT_CACHE", str(tmp_path / "cache"))
    make_fake_fmnist(tmp_path / "fm")
    write_idx(tmp_path / "fm" / "t10k-labels-idx1-ubyte", np.array([0, 1, 12] + [0] * 7), compress=False)
    (tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match=r"1 test labels are out of range \[0, 9\] \(e.g. 12\)"):
        load_dataset("fashion-mnist", root=str(tmp_path / "fm"), download=False)


def test_api_empty_and_missing_dataset_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_ROOT", tmp_path / "none")
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(DatasetNotFound, match=str(root)):
            load_dataset("fashion-mnist", root=str(root), download=False)


def test_api_objective_labels_out_of_range(model):
    from jemkit.energy import ClassifierEnergy

    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(IndexError, match="out of bounds"):
        jem_hybrid(ClassifierEnergy(model), x, torch.tensor([0, 10]), x)
