"""Checkpoints written before the restructuring (tests/fixtures/checkpoints-v1, made by
tests/fixtures/make_checkpoints_v1.py on the main of 2026-12-02) still load, evaluate to the numbers
recorded then, and resume training."""
import json
import shutil
from pathlib import Path

import pytest
import torch

import jemkit
from jemkit.evaluation import evaluate

V1 = Path(__file__).parent / "fixtures" / "checkpoints-v1"
EXPECTED = json.loads((V1 / "expected.json").read_text())


def test_v1_classifier_gives_the_same_logits():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1
    with torch.no_grad():
        logits = jemkit.load(V1 / "jem")(x)
    torch.testing.assert_close(logits, torch.tensor(EXPECTED["logits"]), rtol=1e-5, atol=1e-5)


def test_v1_score_model_gives_the_same_scores():
    from jemkit import load_score_model

    g = torch.Generator().manual_seed(0)
    torch.rand(4, 1, 8, 8, generator=g)  # the fixture script drew the classifier's inputs first
    pts = torch.rand(4, 2, generator=g) * 2 - 1
    with torch.no_grad():
        score = load_score_model(V1 / "dsm")(pts, 0.05)
    torch.testing.assert_close(score, torch.tensor(EXPECTED["score"]), rtol=1e-5, atol=1e-5)


def test_v1_checkpoint_evaluates_to_the_recorded_numbers(tmp_path):
    m = evaluate(V1 / "jem", tmp_path, suites=["accuracy", "calibration", "ood"], quick=True, progress=False, device="cpu")
    want = EXPECTED["metrics"]
    assert m["accuracy"] == pytest.approx(want["accuracy"], abs=1e-6)
    assert m["nll"] == pytest.approx(want["nll"], rel=1e-5)
    assert m["calibration"]["ece"] == pytest.approx(want["calibration"]["ece"], abs=1e-5)
    for name, scores in want["ood"].items():
        for score, auroc in scores.items():
            assert m["ood"][name][score] == pytest.approx(auroc, abs=1e-4), (name, score)


def test_v1_run_resumes(tmp_path):
    from jemkit.config import load_config
    from jemkit.training import train

    run = tmp_path / "jem"
    shutil.copytree(V1 / "jem", run)
    cfg = load_config(run / "config.yaml")
    cfg.train.steps = 152
    result = train(cfg, run, resume=True, progress=False)
    assert result.checkpoint.name == "step_00000152.safetensors"
    assert 0.0 <= result.test_accuracy <= 1.0
