"""Evaluating a user's classifier: ``evaluate`` on a ``jemkit.wrap`` model with ``data=`` and the user's OOD
sets (``ood=``), a TorchScript file, and ``jemkit eval --model ... --weights ...`` through the CLI."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import jemkit
from jemkit.cli import main
from jemkit.evaluation import evaluate
from jemkit.nets import build_net

QUICK = dict(suites=["accuracy", "calibration", "ood"], quick=True, n_ood=50, progress=False, device="cpu")


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    """A state_dict of torchvision's ResNet-18 with the small stem, for 1×8×8 digits (untrained)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("byom") / "resnet18.pt"
    torch.save(build_net("torchvision:resnet18", 1, 10, stem="small").state_dict(), path)
    return path


def test_wrapped_model_evaluates_on_given_data_with_a_user_ood_set(digits, tmp_path):
    torch.manual_seed(0)
    model = jemkit.wrap(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), (1, 8, 8), normalize=(0.5, 0.5))
    blobs = np.random.default_rng(0).integers(0, 256, size=(30, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "blobs.npz", x=blobs)
    m = evaluate(model, tmp_path / "eval", data=digits, ood={"blobs": f"npz:{tmp_path / 'blobs.npz'}"}, **QUICK)
    assert m["checkpoint"] == "nn.Module Sequential" and m["dataset"] == "digits" and "run_dir" not in m
    assert 0.0 <= m["accuracy"] <= 1.0 and m["calibration"]["ece"] >= 0
    assert {"uniform", "flip", "interp", "blobs"} <= set(m["ood"])
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == json.loads(json.dumps(m))


def test_a_checkpoint_on_given_data_is_scored_as_on_its_own(digits, tmp_path):
    v1 = Path(__file__).parent / "fixtures" / "checkpoints-v1" / "jem"
    own = evaluate(v1, tmp_path / "own", **QUICK)
    given = evaluate(v1, tmp_path / "given", data=digits, **QUICK)
    assert given == own and "run_dir" in given


def test_wrapped_model_needs_data_that_fits_it(digits, tmp_path):
    model = jemkit.wrap(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), (1, 8, 8))
    with pytest.raises(ValueError, match="names no dataset: pass data="):
        evaluate(model, tmp_path / "a", **QUICK)
    other = jemkit.wrap(nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 10)), (3, 8, 8))
    with pytest.raises(ValueError, match="digits has images 1x8x8, the model takes 3x8x8"):
        evaluate(other, tmp_path / "b", data=digits, **QUICK)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_evaluates_a_torchvision_model_from_a_weights_file(resnet_weights, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["eval", "--model", "torchvision:resnet18", "--weights", str(resnet_weights), "--stem", "small",
               "--input", "1x8x8", "--normalize", "0.5,0.5", "--data", "digits", "--suite", "accuracy,ood",
               "--n-ood", "50", "--quick", "--quiet", "--device", "cpu", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["checkpoint"] == f"torchvision:resnet18 + {resnet_weights}" and m["dataset"] == "digits"
    assert set(m["ood"]["uniform"]) == {"logp", "maxprob", "gradnorm", "energy"}


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_cli_evaluates_a_torchscript_file(tmp_path, capsys):
    torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(64, 10))).save(str(tmp_path / "m.pt"))
    rc = main(["eval", "--model", str(tmp_path / "m.pt"), "--data", "digits", "--suite", "accuracy", "--quick",
               "--quiet", "--device", "cpu", "--out", str(tmp_path / "eval")])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["checkpoint"] == f"TorchScript {tmp_path / 'm.pt'}"


@pytest.mark.parametrize("args, message", [
    (["--data", "digits"], "give either a CHECKPOINT or --model"),
    (["run", "--model", "torchvision:resnet18", "--data", "digits"], "give either a CHECKPOINT or --model"),
    (["--model", "torchvision:resnet18"], "--model needs --data"),
    (["run", "--weights", "w.pt", "--stem", "small"], "--weights, --stem describe a --model"),
    (["--model", "torchvision:resnet18", "--weights", "W.pt", "--num-classes", "5", "--stem", "small",
      "--data", "digits"], "W.pt does not fit torchvision:resnet18 with 5 classes and input 1x8x8, stem small: "
                           "fc.weight is \\(10, 512\\) in the file, \\(5, 512\\) in the model; try --num-classes 10"),
    (["--model", "nope.pt", "--data", "digits"], "nope.pt is neither torchvision:NAME / timm:NAME nor an existing"),
])
def test_cli_bad_model_arguments_are_one_line(args, message, resnet_weights, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(resnet_weights.parent)
    (resnet_weights.parent / "W.pt").write_bytes(resnet_weights.read_bytes())
    assert main(["eval", *args, "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jemkit: error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert not (tmp_path / "eval").exists()
