"""``jemkit.wrap``: any module as the ``Classifier`` ``jemkit.load`` returns — the input convention it feeds the
module (checked by hand), the record it synthesizes, and the round trip through ``save_model`` / ``load``."""
from pathlib import Path

import pytest
import torch
from torch import nn

import jemkit
from jemkit.nets import build_net
from jemkit.sampling import init_from_record, sampler_config


class Recorder(nn.Module):
    """Logits = the first K pixels of what it was fed; keeps that input."""

    def __init__(self, k: int = 4):
        super().__init__()
        self.k, self.seen = k, None

    def forward(self, x):
        self.seen = x
        return x.flatten(1)[:, : self.k]


def test_normalize_maps_minus_one_one_per_channel_as_documented():
    rec = Recorder()
    model = jemkit.wrap(rec, (3, 2, 2), normalize=((0.5, 0.25, 0.0), (0.5, 0.25, 2.0)))
    x = torch.tensor([-1.0, 0.0, 1.0, 0.5]).view(1, 1, 2, 2).repeat(1, 3, 1, 1)
    model(x)
    # x01 = (x + 1) / 2 = [0, 0.5, 1, 0.75]; then (x01 - mean) / std per channel
    expected = torch.tensor([[[-1.0, 0.0], [1.0, 0.5]], [[-1.0, 1.0], [3.0, 2.0]], [[0.0, 0.25], [0.5, 0.375]]])
    torch.testing.assert_close(rec.seen[0], expected)
    model_default = jemkit.wrap(rec, (3, 2, 2))
    model_default(x)
    torch.testing.assert_close(rec.seen, (x + 1) / 2)  # no normalize: [0, 1] images
    assert model.record["preprocessing"]["normalize"] == {"mean": [0.5, 0.25, 0.0], "std": [0.5, 0.25, 2.0]}


def test_record_of_a_wrapped_module():
    model = jemkit.wrap(Recorder(k=3), (1, 4, 4), class_names=["a", "b", "c"], normalize=(0.5, 0.5))
    r = model.record
    assert model.num_classes == 3 and not model.training
    assert (r["arch"], r["objective"], r["temperature"], r["dataset"], r["class_names"]) == (None, "external", 1.0, None, ["a", "b", "c"])
    assert r["config"]["buffer"]["init"] == "class_gaussian" and r["config"]["model"]["arch"] == "external"
    assert sampler_config(r).name == "sgld"
    x = torch.rand(20, 1, 4, 4) * 2 - 1
    init = init_from_record(r, x, torch.arange(20) % 3)
    assert init(5, (1, 4, 4)).shape == (5, 1, 4, 4)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 5}, "num_classes=5, but the model returns 4 logits"),
    ({"class_names": ["a"]}, "1 class names for 4 classes"),
    ({"normalize": ((0.1, 0.2), 0.5)}, "normalize mean needs 1 or 3 values"),
    ({"normalize": (0.5, 0.0)}, "normalize std must be > 0"),
])
def test_bad_wrap_arguments_say_which(kwargs, message):
    with pytest.raises(ValueError, match=message):
        jemkit.wrap(Recorder(), (3, 2, 2), **kwargs)


def test_module_that_does_not_take_the_shape_says_so():
    with pytest.raises(ValueError, match=r"does not take images of shape \(N, 1, 8, 8\)"):
        jemkit.wrap(nn.Sequential(nn.Flatten(), nn.Linear(10, 2)), (1, 8, 8))
    with pytest.raises(ValueError, match=r"returns \(1, 1, 8, 8\) for one image, not logits"):
        jemkit.wrap(nn.Identity(), (1, 8, 8))


def test_wrapped_torchvision_resnet_round_trips_through_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = jemkit.wrap(build_net("torchvision:resnet18", 1, 10, stem="small"), (1, 28, 28), normalize=(0.2860, 0.3530))
    record_path = jemkit.save_model(model, tmp_path / "run")
    loaded = jemkit.load(tmp_path / "run")
    assert record_path.name == "step_00000000.json" and loaded.record["arch"] == "torchvision:resnet18"
    assert loaded.record["net_options"] == {"stem": "small"} and loaded.num_classes == 10
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")
def test_a_module_jemkit_cannot_rebuild_is_not_saved(tmp_path):
    with pytest.raises(ValueError, match="cannot save nn.Module Recorder: jemkit rebuilds a saved model"):
        jemkit.save_model(jemkit.wrap(Recorder(), (1, 2, 2)), tmp_path)
    scripted = torch.jit.trace(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="cannot save a TorchScript model"):
        jemkit.save_model(jemkit.wrap(scripted, (1, 2, 2)), tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_loaded_checkpoint_saves_again_as_the_same_model(tmp_path):
    v1 = jemkit.load(Path(__file__).parent / "fixtures" / "checkpoints-v1" / "jem")
    jemkit.save_model(v1, tmp_path / "copy")
    copy = jemkit.load(tmp_path / "copy")
    assert copy.checkpoint_path.endswith("step_00000150.safetensors") and copy.record["config"] == v1.record["config"]
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(copy(x), v1(x), rtol=0, atol=0)
