"""Temperature scaling (Guo et al. 2017): known temperatures come back, NLL drops on held-out data,
the calibration suite reports the new keys beside the unchanged ``ece``."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from jemkit.evaluation import evaluate
from jemkit.evaluation.calibration import expected_calibration_error, fit_temperature, halves, reliability_bins, temperature_scaling

V1 = Path(__file__).parent / "fixtures" / "checkpoints-v1"


def _calibrated(n: int, k: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits f and labels drawn from softmax(f): calibrated by construction."""
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n, k, generator=g) * 2
    y = torch.multinomial(f.softmax(1), 1, generator=g).squeeze(1)
    return f, y


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_a_known_multiple_of_calibrated_logits_gives_its_temperature_back(scale):
    f, y = _calibrated(20000)
    assert fit_temperature(f * scale, y) == pytest.approx(scale, rel=0.02)


def test_scaling_lowers_held_out_nll_and_ece_of_overconfident_logits():
    f, y = _calibrated(4000, seed=1)
    m = temperature_scaling(f * 4, y, seed=0)
    assert m["temperature"] > 1  # overconfident → T > 1 softens
    assert m["nll_eval_scaled"] <= m["nll_eval_raw"]
    assert m["ece_eval_scaled"] < m["ece_eval_raw"]
    _, held = halves(len(y), 0)
    assert m["nll_eval_raw"] == pytest.approx(F.cross_entropy(f[held] * 4, y[held]).item(), rel=1e-6)


def test_the_split_is_seeded_and_disjoint():
    a, b = halves(11, seed=3)
    assert len(a) == 5 and len(b) == 6 and sorted(torch.cat([a, b]).tolist()) == list(range(11))
    assert torch.equal(halves(11, seed=3)[0], a) and not torch.equal(halves(11, seed=4)[0], a)
    with pytest.raises(ValueError, match="at least 2"):
        halves(1, seed=0)


def test_perfect_and_uninformative_logits_stay_in_range_and_non_finite_ones_are_refused():
    y = torch.arange(5).repeat(20)
    t = fit_temperature(F.one_hot(y, 5).float() * 2, y)  # all right: sharpen until the NLL is 0 in float64
    assert 1e-2 <= t < 0.1 and F.cross_entropy(F.one_hot(y, 5).double() * 2 / t, y).item() < 1e-15
    assert 1e-2 <= fit_temperature(torch.zeros(100, 5), y) <= 1e2  # flat logits: every T gives the same NLL
    with pytest.raises(ValueError, match="1 non-finite"):
        fit_temperature(torch.tensor([[0.0, float("nan")]]), torch.tensor([0]))


def test_torchmetrics_ece_equals_the_reliability_bins_it_is_drawn_from():
    """ECE through torchmetrics (20 equal-width bins, L1) = Σ_b n_b/N |acc_b − conf_b| of reliability_bins."""
    f, y = _calibrated(3000, seed=2)
    for logits in (f, f * 3, f / 2):
        rel = reliability_bins(logits, y, bins=20)
        by_hand = sum(n / len(y) * abs(a - c) for n, a, c in zip(rel["count"], rel["accuracy"], rel["confidence"]) if n)
        assert expected_calibration_error(logits, y, bins=20) == pytest.approx(by_hand, abs=1e-6)


def test_the_v1_checkpoint_reports_temperature_scaling_beside_the_recorded_ece(tmp_path):
    expected = json.loads((V1 / "expected.json").read_text())["metrics"]["calibration"]
    m = evaluate(V1 / "jem", tmp_path, suites=["calibration"], quick=True, progress=False, device="cpu")["calibration"]
    assert m["ece"] == pytest.approx(expected["ece"], abs=1e-5) and m["bins"] == 20
    assert set(m) == {"ece", "bins", "temperature", "ece_eval_raw", "ece_eval_scaled", "nll_eval_raw", "nll_eval_scaled"}
    assert 1e-2 <= m["temperature"] <= 1e2 and m["nll_eval_scaled"] <= m["nll_eval_raw"] + 1e-9
    assert (tmp_path / "reliability.png").is_file()
