"""examples/resnet18_fmnist.py, the user script of the bring-your-own-model path, for two steps on digits: its
weights file evaluates through the ``jemkit eval`` command it prints, to the accuracy the script measured itself."""
import importlib.util
import json
import os
import shlex
import subprocess
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


def test_the_end_to_end_script_trains_evaluates_finetunes_and_reports(tmp_path):
    """examples/resnet18_fmnist.sh, shrunk to seconds: every stage runs and the fine-tuned model's evaluation
    has the model as it came as its baseline."""
    out = tmp_path / "run"
    env = {**os.environ, "DATA": "digits", "SUITES": "accuracy,calibration", "EVAL_FLAGS": "--quick --quiet",
           "TRAIN_FLAGS": "--steps 2 --batch-size 16",
           "FINETUNE_FLAGS": "--quiet --set buffer.size=100 --set data.batch_size=16 --set train.tensorboard=false"}
    done = subprocess.run(["bash", str(EXAMPLE.with_suffix(".sh")), str(out), "1", "2"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    pre = json.loads((out / "eval" / "metrics.json").read_text())
    both = json.loads((out / "finetune" / "eval" / "metrics.json").read_text())
    assert both["baseline"]["accuracy"] == pytest.approx(pre["accuracy"], abs=1e-6)  # the baseline is the model as it came
    assert (out / "finetune" / "eval" / "report.html").is_file()
    assert (out / "seconds.txt").read_text().startswith("seconds: train ")
