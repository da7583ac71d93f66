"""``model.init`` and ``model.normalize`` in any config: the input convention is what ``jemkit.load`` restores (checked
by hand), pretrained weights are step 0 (weight average too), an interrupted fine-tuning run resumes bitwise without
reading its init again, and an init that does not fit says so in one line before anything is written."""
import pytest
import torch
from safetensors.torch import load_file

import jemkit
from jemkit.config import load_preset
from jemkit.training import Callback, train

TINY = ["model.width=4", "buffer.size=100", "data.batch_size=16", "sampler.steps=3", "train.tensorboard=false",
        "train.log_every=1", "train.eval_every=100", "train.sample_every=100"]


@pytest.fixture(scope="module")
def bare_weights(tmp_path_factory):
    """A digits CNN (width 4) trained 20 steps, its bare net's state_dict saved with torch.save, and that state."""
    run = tmp_path_factory.mktemp("init") / "pre"
    train(load_preset("digits-baseline", ["train.steps=20", "model.width=4", "optim.warmup=5", "train.eval_every=20",
                                          "train.log_every=20", "train.tensorboard=false"]), run, progress=False)
    state = {k[len("net."):]: v for k, v in jemkit.load(run).state_dict().items()}
    path = run.parent / "cnn.pt"
    torch.save(state, path)
    return path, state


def weights(run, step, suffix=".safetensors"):
    return load_file(str(run / "checkpoints" / f"step_{step:08d}{suffix}"))


def test_normalize_is_the_input_convention_jemkit_load_restores(digits, tmp_path):
    train(load_preset("digits-jem", [*TINY, "train.steps=2", "model.normalize=[0.5, 0.25]"]), tmp_path / "run", progress=False)
    model = jemkit.load(tmp_path / "run")
    assert model.preprocessing["normalize"] == {"mean": [0.5], "std": [0.25]}
    x = digits.x_test[:20]
    by_hand = model.net.module(((x + 1) / 2 - 0.5) / 0.25)  # the bare CNN fed the user's convention
    torch.testing.assert_close(model(x), by_hand, rtol=0, atol=0)
    jemkit.save_model(model, tmp_path / "saved")
    torch.testing.assert_close(jemkit.load(tmp_path / "saved")(x), model(x), rtol=0, atol=0)


def test_pretrained_weights_are_step_0_and_its_weight_average(bare_weights, tmp_path):
    path, state = bare_weights
    cfg = load_preset("digits-jem", [*TINY, "train.steps=1", "train.ema=0.9", f"model.init=weights:{path}"])
    train(cfg, tmp_path / "run", progress=False)
    for suffix in (".safetensors", ".ema.safetensors"):
        saved = weights(tmp_path / "run", 0, suffix)
        assert saved.keys() == {f"net.{k}" for k in state} and all(torch.equal(saved[f"net.{k}"], v) for k, v in state.items())
    assert not all(torch.equal(weights(tmp_path / "run", 1)[f"net.{k}"], v) for k, v in state.items())  # it trained


class StopAt(Callback):
    """Stops the run (an exception) when step ``at`` starts: a crash after the checkpoint of the step before."""

    def __init__(self, at: int):
        self.at = at

    def on_step_start(self, step, optimizer):
        if step == self.at:
            raise KeyboardInterrupt(f"stopped at {step}")


def test_an_interrupted_finetuning_resumes_bitwise_without_reading_its_init(bare_weights, tmp_path):
    path, _ = bare_weights
    init = tmp_path / "init.pt"
    init.write_bytes(path.read_bytes())
    cfg = load_preset("finetune-jempp", [*TINY, "data.name=digits", "model.head_grid=1", "train.steps=4",
                                         "train.checkpoint_every=2", "optim.warmup=0", f"model.init=weights:{init}"])
    train(cfg, tmp_path / "ref", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", progress=False, callbacks=[StopAt(3)])
    init.unlink()  # a resume restores its own checkpoint: the init file is not needed any more
    train(cfg, tmp_path / "run", progress=False)
    assert "resumed from step_00000002.json" in (tmp_path / "run" / "events.log").read_text()
    for suffix in (".safetensors", ".buffer.safetensors"):
        a, b = weights(tmp_path / "ref", 4, suffix), weights(tmp_path / "run", 4, suffix)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), suffix
    with pytest.raises(FileNotFoundError, match=f"weights file {init} does not exist"):  # a fresh start needs it
        train(cfg, tmp_path / "fresh", progress=False)
    assert not (tmp_path / "fresh").exists()


@pytest.mark.parametrize("sets, error, message", [
    (["model.width=8"], ValueError, r"cnn.pt does not fit cnn with 10 classes and input 1x8x8: features.0.weight is "
                                    r"\(4, 1, 3, 3\) in the file, \(8, 1, 3, 3\) in the model"),
    (["model.normalize=[0.5, 0.5, 0.5]"], ValueError, r"model.normalize needs \[mean, std\] or 1 means then 1 stds"),
    (["model.normalize=[0.5, 0.0]"], ValueError, r"model.normalize stds must be > 0, got \[0.0\]"),
    (["model.init=checkpoint:{tmp}/none"], FileNotFoundError, r"checkpoint path {tmp}/none does not exist"),
])
def test_a_bad_init_or_convention_is_one_line_before_anything_is_written(sets, error, message, bare_weights, tmp_path):
    sets = [s.format(tmp=tmp_path) for s in sets]
    cfg = load_preset("digits-jem", [*TINY, "train.steps=1", f"model.init=weights:{bare_weights[0]}", *sets])
    with pytest.raises(error, match=message.format(tmp=tmp_path)):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_init_must_see_its_own_input_convention(tmp_path):
    train(load_preset("digits-baseline", ["train.steps=1", "model.width=4", "train.tensorboard=false"]), tmp_path / "pre",
          progress=False)
    cfg = load_preset("digits-jem", [*TINY, "train.steps=1", f"model.init={tmp_path / 'pre'}", "model.normalize=[0.5, 0.5]"])
    with pytest.raises(ValueError, match=r"sees x in \[-1, 1\] as is, but model.normalize=\[0.5, 0.5\] makes the net see "
                                         r"\(\(x\+1\)/2 - mean\)/std, mean \[0.5\], std \[0.5\]: set model.normalize=\[\]"):
        train(cfg, tmp_path / "run", progress=False)
    cfg.model.init = "weights:"  # (a --set reads it as YAML, a mapping: "model.init must be a string")
    with pytest.raises(ValueError, match="model.init=weights: names no file after 'weights:'"):
        train(cfg, tmp_path / "run", progress=False)
