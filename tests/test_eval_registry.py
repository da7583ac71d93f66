"""The suite registry and ``evaluate``: names, the metrics.json layout, FID features shared by model and baseline."""
import json
from pathlib import Path

import pytest

from jemkit.evaluation import DEFAULT_SUITES, SUITES, check_suites, evaluate

V1_JEM = Path(__file__).parent / "fixtures" / "checkpoints-v1" / "jem"


def test_suite_names():
    assert set(DEFAULT_SUITES) <= set(SUITES)
    assert check_suites(["all"]) == list(SUITES)
    assert check_suites(["ood", "accuracy", "ood"]) == ["ood", "accuracy"]
    with pytest.raises(ValueError, match="did you mean 'calibration'"):
        check_suites(["calibraton"])


def test_model_and_baseline_are_judged_in_one_feature_space(tmp_path):
    """The baseline is the model here, so every number repeats under ``baseline``; the feature-FID
    reference (the baseline by default) is named by its checkpoint record."""
    m = evaluate(V1_JEM, tmp_path, baseline=V1_JEM, suites=["samples"], quick=True, progress=False, device="cpu")
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(m))
    quality = m["samples"]["quality"]
    assert quality["feature_reference"].endswith("step_00000150.json") and quality["fid_inception"] is None
    assert quality["fid_feature"] > 0 and quality["n_samples"] == 32
    assert m["baseline"]["samples"] == m["samples"]
    names = {p.name for p in tmp_path.iterdir()}
    assert {"samples_unconditional.png", "baseline_samples_unconditional.png", "samples_class_conditional.png"} <= names
