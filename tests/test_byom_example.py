"""examples/resnet18_fmnist.py, the user script of the bring-your-own-model path, for two steps on digits: its
weights file evaluates through the ``jemkit eval`` command it prints, to the accuracy the script measured itself."""
import importlib.util
import json
import shlex
from pathlib import Path

import pytest

from jemkit.cli import main as jemkit_main

EXAMPLE = Path(__file__).parent.parent / "examples" / "resnet18_fmnist.py"


def test_example_trains_saves_and_its_eval_command_runs(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("resnet18_fmnist", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--data", "digits", "--steps", "2", "--batch-size", "16", "--out", str(tmp_path / "run")])
    assert result["steps"] == 2 and (tmp_path / "run" / "resnet18.safetensors").is_file()
    argv = shlex.split(result["command"])
    assert argv[:2] == ["jemkit", "eval"] and "--stem" in argv
    assert jemkit_main([*argv[1:], "--suite", "accuracy", "--quick", "--quiet", "--device", "cpu"]) == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-6)  # the same count: the model saw its own convention
