import json

import pytest
import torch

import jemkit
from jemkit.config import load_preset
from jemkit.data import load_dataset
from jemkit.checkpoint import resolve_checkpoint, save_checkpoint
from jemkit.training import build_model
from jemkit.training.build import checkpoint_record


@pytest.fixture
def saved(tmp_path):
    cfg = load_preset("digits-jem", ["model.width=8"])
    data = load_dataset("digits")
    model = build_model(cfg, data)
    record = checkpoint_record(cfg, data, model)
    save_checkpoint(tmp_path / "run" / "checkpoints", 5, model, record)
    save_checkpoint(tmp_path / "run" / "checkpoints", 12, model, record, buffer=torch.zeros(4, 1, 8, 8))
    return tmp_path / "run", model, data


def test_load_round_trip(saved):
    run, model, data = saved
    loaded = jemkit.load(run)  # a run directory means its latest checkpoint
    assert loaded.checkpoint_path.endswith("step_00000012.safetensors")
    assert loaded.input_shape == (1, 8, 8) and loaded.num_classes == 10
    assert loaded.preprocessing["range"] == [-1.0, 1.0]
    assert not loaded.training
    model.eval()
    x = data.x_test[:7]
    assert torch.equal(loaded(x), model(x))


def test_resolve_paths(saved):
    run, _, _ = saved
    ckpts = run / "checkpoints"
    assert resolve_checkpoint(ckpts / "step_00000005.json") == ckpts / "step_00000005.json"
    assert resolve_checkpoint(ckpts / "step_00000005.safetensors") == ckpts / "step_00000005.json"
    assert resolve_checkpoint(ckpts) == ckpts / "step_00000012.json"
    assert resolve_checkpoint(run) == ckpts / "step_00000012.json"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_checkpoint(run / "nope")
    with pytest.raises(FileNotFoundError, match="no valid checkpoint"):
        resolve_checkpoint(run / "..")


def test_wrong_input_shape_names_expected_shape(saved):
    loaded = jemkit.load(saved[0])
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        loaded(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        loaded(torch.zeros(1, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        loaded(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))


def test_architecture_mismatch_names_keys(saved):
    run, _, _ = saved
    record_path = run / "checkpoints" / "step_00000012.json"
    record = json.loads(record_path.read_text())
    record["arch"] = "wrn"
    record["net_options"] = {"depth": 10, "widen": 1}
    record_path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="does not match architecture 'wrn'.*missing keys"):
        jemkit.load(record_path)


def test_architecture_shape_mismatch_names_keys(saved):
    run, _, _ = saved
    record_path = run / "checkpoints" / "step_00000012.json"
    record = json.loads(record_path.read_text())
    record["net_options"]["width"] = 4  # same layer names, other shapes
    record_path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="shape mismatch in .*net.features.0.weight"):
        jemkit.load(record_path)


def test_checkpoint_files_are_safetensors_and_no_temp_left(saved):
    run, _, _ = saved
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["step_00000005.json", "step_00000005.safetensors", "step_00000012.buffer.safetensors",
                     "step_00000012.json", "step_00000012.safetensors"]
    assert jemkit.checkpoint.load_buffer(run).shape == (4, 1, 8, 8)
