"""train.ema: an exponential moving average of the weights, saved with every checkpoint (checksummed),
loaded by jemkit.load unless ema=False, and restored on resume so that a resumed run stays bitwise."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

import jemkit
from jemkit.config import ConfigError, load_preset
from jemkit.training import train
from jemkit.training.build import build_ema

SETS = ["train.steps=12", "train.checkpoint_every=6", "model.width=8", "buffer.size=100", "sampler.steps=2",
        "train.log_every=6", "train.eval_every=6", "train.sample_every=100", "train.tensorboard=false",
        "optim.warmup=0", "optim.lr=0.003", "train.ema=0.9"]


def test_ema_is_the_exponential_average_of_the_weights():
    net = torch.nn.Linear(2, 1)
    ema = build_ema(net, 0.9)
    seen = []
    for value in (1.0, 2.0, 4.0):
        with torch.no_grad():
            for p in net.parameters():
                p.fill_(value)
        ema.update_parameters(net)
        seen.append(ema.module.weight[0, 0].item())
    assert seen == pytest.approx([1.0, 0.9 * 1.0 + 0.1 * 2.0, 0.9 * 1.1 + 0.1 * 4.0])  # the first update copies
    assert build_ema(net, 0.0) is None


def test_ema_checkpoint_load_and_bitwise_resume(tmp_path):
    ref = tmp_path / "ref"
    train(load_preset("digits-jem", SETS), ref, progress=False)
    ckpts = ref / "checkpoints"
    record = json.loads((ckpts / "step_00000012.json").read_text())
    assert "step_00000012.ema.safetensors" in record["files"], "the average is checksummed with the checkpoint"
    raw, averaged = load_file(str(ckpts / "step_00000012.safetensors")), load_file(str(ckpts / "step_00000012.ema.safetensors"))

    model = jemkit.load(ref)
    assert model.ema and all(torch.equal(v, averaged[k]) for k, v in model.state_dict().items())
    assert any(not torch.equal(averaged[k], raw[k]) for k in raw), "the average differs from the last weights"
    plain = jemkit.load(ref, ema=False)
    assert not plain.ema and all(torch.equal(v, raw[k]) for k, v in plain.state_dict().items())
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        assert not torch.equal(model(x), plain(x))

    resumed = tmp_path / "resumed"  # killed after step 6: the rerun must end where the uninterrupted one did
    shutil.copytree(ref, resumed)
    for p in (resumed / "checkpoints").glob("step_00000012.*"):
        p.unlink()
    train(load_preset("digits-jem", SETS), resumed, progress=False)
    for name in ("safetensors", "ema.safetensors", "buffer.safetensors"):
        a, b = load_file(str(ckpts / f"step_00000012.{name}")), load_file(str(resumed / "checkpoints" / f"step_00000012.{name}"))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_ema_off_writes_no_average_and_bad_decays_are_refused(tmp_path):
    run = tmp_path / "run"
    train(load_preset("digits-baseline", ["train.steps=2", "model.width=8", "train.tensorboard=false"]), run, progress=False)
    assert not list((run / "checkpoints").glob("*.ema.safetensors")) and not jemkit.load(run).ema
    for bad in ("1.0", "-0.1"):
        with pytest.raises(ConfigError, match="train.ema"):
            load_preset("digits-jem", [f"train.ema={bad}"])
