"""`jemkit finetune` through the CLI: a jemkit checkpoint and a torchvision model from a weights file each
fine-tuned two steps; the run's step 0 is the model as it came, ``RUN/pretrained`` gives its logits, the printed
eval command scores it as the baseline; bad inputs are one line and write nothing."""
import json
import shlex

import pytest
import torch
from safetensors.torch import load_file, save_file

import jemkit
from jemkit.cli import main
from jemkit.config import load_config, load_preset
from jemkit.nets import build_net
from jemkit.training import train

TINY = ["train.steps=2", "buffer.size=100", "data.batch_size=16", "train.tensorboard=false", "train.log_every=1",
        "train.eval_every=2", "train.sample_every=2"]
SETS = [a for s in TINY for a in ("--set", s)]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny cross-entropy digits CNN (width 4, 30 steps): the classifier to fine-tune."""
    run = tmp_path_factory.mktemp("finetune") / "pre"
    train(load_preset("digits-baseline", ["train.steps=30", "model.width=4", "optim.warmup=5", "train.eval_every=30",
                                          "train.log_every=30", "train.tensorboard=false"]), run, progress=False)
    return run


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A state_dict of torchvision's ResNet-18 (small stem, 1 channel, 10 classes) as safetensors, and the net."""
    torch.manual_seed(0)
    net = build_net("torchvision:resnet18", 1, 10, stem="small")
    path = tmp_path_factory.mktemp("finetune") / "resnet18.safetensors"
    save_file(net.state_dict(), str(path))
    return path, net.eval()


def step0(run):
    return load_file(str(run / "checkpoints" / "step_00000000.safetensors"))


def test_finetune_a_checkpoint(pretrained, digits, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["finetune", str(pretrained), "--out", str(run), "--quiet", *SETS]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "test accuracy" in out
    command = out.splitlines()[-1].split(": ", 1)[1]
    assert command == f"jemkit eval {run} --baseline {run / 'pretrained'} --out {run / 'eval'}"
    came = jemkit.load(pretrained)
    assert {k: v.shape for k, v in step0(run).items()} == {k: v.shape for k, v in came.state_dict().items()}
    assert all(torch.equal(step0(run)[k], v) for k, v in came.state_dict().items())
    torch.testing.assert_close(jemkit.load(run / "pretrained")(digits.x_test), came(digits.x_test), rtol=0, atol=0)
    cfg = load_config(run / "config.yaml")
    assert cfg.preset == "finetune-jempp" and cfg.model.width == 4 and cfg.model.head_grid == 1  # the checkpoint's net
    assert cfg.data.name == "digits" and cfg.model.init == f"checkpoint:{came.checkpoint_path[:-len('.safetensors')]}.json"
    assert cfg.optim.lr == 1e-4 and cfg.train.steps == 2  # the preset's recipe, then --set

    argv = shlex.split(command)[1:] + ["--suite", "accuracy", "--quick", "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    m = json.loads((run / "eval" / "metrics.json").read_text())
    assert m["baseline"]["accuracy"] == (came(digits.x_test).argmax(1) == digits.y_test).float().mean().item()


def test_finetune_a_torchvision_model_from_a_weights_file(resnet_file, digits, tmp_path, capsys):
    net, path, run = resnet_file[1], tmp_path / "resnet18.safetensors", tmp_path / "run"
    path.write_bytes(resnet_file[0].read_bytes())
    argv = ["finetune", "--model", "torchvision:resnet18", "--weights", str(path), "--stem", "small",
            "--normalize", "0.5,0.25", "--data", "digits", "--out", str(run), "--quiet", *SETS]
    assert main(argv) == 0, capsys.readouterr().err
    assert "--baseline" in capsys.readouterr().out
    weights = step0(run)
    assert weights.keys() == {f"net.module.{k}" for k in net.state_dict()}
    assert all(torch.equal(weights[f"net.module.{k}"], v) for k, v in net.state_dict().items())
    came = jemkit.wrap(net, (1, 8, 8), normalize=(0.5, 0.25))
    back = jemkit.load(run / "pretrained")
    assert back.preprocessing["normalize"] == {"mean": [0.5], "std": [0.25]} and back.record["dataset"] == "digits"
    torch.testing.assert_close(back(digits.x_test[:100]), came(digits.x_test[:100]), rtol=0, atol=0)
    cfg = load_config(run / "config.yaml")
    assert (cfg.model.arch, cfg.model.stem, cfg.model.normalize) == ("torchvision:resnet18", "small", [0.5, 0.25])

    path.unlink()  # the same command again continues the run from its own checkpoint: the weights file is not read
    assert main([*argv, "--set", "train.steps=3", "--resume"]) == 0, capsys.readouterr().err
    assert "resumed from step_00000002.json" in (run / "events.log").read_text()
    torch.testing.assert_close(jemkit.load(run / "pretrained")(digits.x_test[:100]), came(digits.x_test[:100]), rtol=0, atol=0)


@pytest.mark.parametrize("norm_eval", [True, False])
def test_norm_eval_keeps_the_pretrained_batch_norm_statistics(norm_eval, resnet_file, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["finetune", "--model", "torchvision:resnet18", "--weights", str(resnet_file[0]), "--stem", "small",
            "--data", "digits", "--out", str(run), "--quiet", *SETS, "--set", f"train.norm_eval={str(norm_eval).lower()}"]
    assert main(argv) == 0, capsys.readouterr().err
    before, after = step0(run), load_file(str(run / "checkpoints" / "step_00000002.safetensors"))
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert len(stats) == 40  # 20 batch-norm layers in ResNet-18
    assert all(torch.equal(before[k], after[k]) for k in stats) == norm_eval
    assert not torch.equal(before["net.module.fc.weight"], after["net.module.fc.weight"])  # the weights trained either way


@pytest.fixture(scope="module")
def saved_wrap(tmp_path_factory):
    """A wrapped model saved by jemkit.save_model: a checkpoint that names no dataset."""
    model = jemkit.wrap(build_net("cnn", 1, 10, width=4), (1, 8, 8))
    run = tmp_path_factory.mktemp("finetune") / "wrapped"
    jemkit.save_model(model, run)
    return run


@pytest.mark.parametrize("argv, message", [
    (["{pre}", "--model", "torchvision:resnet18", "--data", "digits"], "give either a CHECKPOINT or --model (exactly one)"),
    (["--data", "digits"], "give either a CHECKPOINT or --model (exactly one)"),
    (["--model", "torchvision:resnet18", "--data", "digits"], "--model torchvision:resnet18 needs --weights"),
    (["--model", "torchvision:resnet18", "--weights", "{w}"], "--model needs --data"),
    (["--model", "{w}", "--data", "digits"], "finetune rebuilds the net by name, so give torchvision:NAME or timm:NAME"),
    (["--model", "torchvision:resnet18", "--weights", "{w}", "--data", "digits"],
     "resnet18.safetensors does not fit torchvision:resnet18 with 10 classes and input 1x8x8: conv1.weight is "
     "(64, 1, 3, 3) in the file, (64, 1, 7, 7) in the model; try --stem small"),
    (["{pre}", "--weights", "{w}"], "--weights describe a --model; a checkpoint records its own"),
    (["{tmp}/nope"], "checkpoint path {tmp}/nope does not exist"),
    (["{wrapped}"], "records no dataset (a model saved by jemkit.save_model): give --data"),
    (["{pre}", "--set", "model.normalize=[0.5]"], "model.normalize needs [mean, std] or 1 means then 1 stds, got [0.5]"),
    (["{pre}", "--set", "model.width=8"], "does not fit cnn with 10 classes and input 1x8x8: net.features.0.weight is "
                                          "(4, 1, 3, 3) in the file, (8, 1, 3, 3) in the model"),
])
def test_bad_input_is_one_line_and_writes_nothing(argv, message, pretrained, resnet_file, saved_wrap, tmp_path, capsys):
    names = {"pre": pretrained, "w": resnet_file[0], "tmp": tmp_path, "wrapped": saved_wrap}
    argv = [a.format(**names) for a in argv]
    assert main(["finetune", *argv, "--out", str(tmp_path / "run"), "--quiet", *SETS]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jemkit: error: ") and err.count("\n") == 1 and message.format(**names) in err, err
    assert not (tmp_path / "run").exists()


def test_a_directory_holding_another_run_is_refused_before_pretrained_is_written(pretrained, tmp_path, capsys):
    other = tmp_path / "other"
    train(load_preset("digits-baseline", ["train.steps=1", "model.width=4", "train.tensorboard=false"]), other, progress=False)
    assert main(["finetune", str(pretrained), "--out", str(other), "--quiet", *SETS]) == 2
    assert "holds another run" in capsys.readouterr().err and not (other / "pretrained").exists()
