"""Distal adversaries: projected ascent on log p(y|x) from noise, and the suite on known and trained models."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import jemkit
from jemkit.evaluation.distal import class_log_prob, confidence_and_logp, distal_adversaries, suite_distal
from jemkit.model import Classifier

from conftest import DEVICES, TinyNet, make_ctx


@pytest.mark.parametrize("device", DEVICES)
def test_ascent_raises_class_probability_and_stays_in_the_box(device):
    torch.manual_seed(0)
    energy = jemkit.ClassifierEnergy(TinyNet(d=16, k=3)).to(device).train()
    y = torch.tensor([0, 1, 2, 0, 1, 2], device=device)
    x0 = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
    x0_copy = x0.clone()
    seen = []
    x = distal_adversaries(energy, x0, y, steps=30, step_size=0.5, callback=lambda d: seen.append(d["log_prob"]))
    assert torch.equal(x0, x0_copy)  # input untouched
    assert x.abs().max() <= 1.0
    assert len(seen) == 30
    assert energy.training and all(m.training for m in energy.modules())  # mode restored
    assert all(p.grad is None and p.requires_grad for p in energy.parameters())
    energy.eval()
    before, after = class_log_prob(energy, x0, y), class_log_prob(energy, x, y)
    assert (after > before).all()
    torch.testing.assert_close(seen[0], before.detach())


def test_class_log_prob_and_confidence_match_softmax():
    torch.manual_seed(0)
    energy = jemkit.ClassifierEnergy(TinyNet(d=16, k=3)).eval()
    x, y = torch.randn(5, 16), torch.tensor([0, 2, 1, 1, 0])
    logits = energy.logits(x)
    torch.testing.assert_close(class_log_prob(energy, x, y), F.log_softmax(logits, 1)[torch.arange(5), y])
    conf, logp = confidence_and_logp(energy, x, y)
    torch.testing.assert_close(conf, logits.softmax(1)[torch.arange(5), y])
    torch.testing.assert_close(logp, torch.logsumexp(logits, 1))
    torch.testing.assert_close(confidence_and_logp(energy, x)[0], logits.softmax(1).max(1).values)


def test_bad_arguments_fail_loudly():
    energy = jemkit.ClassifierEnergy(TinyNet(d=16, k=3))
    with pytest.raises(ValueError, match="step_size"):
        distal_adversaries(energy, torch.zeros(1, 16), torch.zeros(1, dtype=torch.long), steps=3, step_size=0.0)


def test_suite_distal_quick(model, data, tmp_path):
    was = [(m, m.training) for m in model.modules()]
    out = suite_distal(make_ctx(model, data, tmp_path))["distal"]
    assert (out["per_class"], out["steps"]) == (2, 5)
    assert out["confidence"] > out["confidence_start"]
    assert 0 <= out["logp_percentile"] <= 1 and 0 < out["test_confidence"] <= 1
    assert (tmp_path / "distal.png").is_file()
    assert all(p.grad is None for p in model.parameters())
    assert all(m.training == t for m, t in was)
    again = suite_distal(make_ctx(model, data, tmp_path, label="baseline"))["distal"]
    assert again == out
    assert (tmp_path / "baseline_distal.png").is_file()
    assert suite_distal(make_ctx(model, data, tmp_path, seed=3))["distal"]["logp"] != out["logp"]


def test_suite_distal_on_a_linear_model_ends_in_the_corner_it_must(digits, tmp_path):
    """Two classes with logits (w·x, −w·x): ascent on log p(c|x) = −softplus(∓2w·x) drives x to the corner
    ±sign(w) of the box, where p(c|x) = σ(2‖w‖₁) and −E(x) = log 2cosh ‖w‖₁, above every image's log 2cosh(w·x)."""
    w = 0.01 * torch.tensor([1.0, -1.0]).repeat(32)  # |∂ log p / ∂x_i| ≥ 0.02 σ(−2‖w‖₁): step 100 moves ≥ 0.43
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 2, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.stack([w, -w]))
    model = Classifier(net, (1, 8, 8), 2).eval()
    model.record = {}
    out = suite_distal(make_ctx(model, digits, tmp_path), steps=10, step_size=100.0)["distal"]
    l1 = w.abs().sum().item()
    a = digits.x_test[:500].flatten(1) @ w  # w·x of the test images
    test_logp = torch.log(2 * torch.cosh(a)).mean().item()
    assert out["confidence"] == pytest.approx(1 / (1 + math.exp(-2 * l1)), rel=1e-5)
    assert out["logp"] == pytest.approx(math.log(2 * math.cosh(l1)), rel=1e-5)
    assert out["test_logp"] == pytest.approx(test_logp, rel=1e-5)
    assert out["test_confidence"] == pytest.approx(torch.sigmoid(2 * a.abs()).mean().item(), rel=1e-5)
    assert out["logp_gap"] == pytest.approx(math.log(2 * math.cosh(l1)) - test_logp, rel=1e-4)
    assert out["logp_percentile"] == 1.0


def test_a_trained_classifier_is_fooled_with_high_confidence(tiny_digits_ce, digits, tmp_path):
    """From uniform noise, 50 ascent steps make a plain classifier more confident than on its test images."""
    out = suite_distal(make_ctx(tiny_digits_ce, digits, tmp_path), steps=50, step_size=1.0)["distal"]
    assert out["confidence_start"] < 0.2  # noise: about 1/K
    assert out["confidence"] > 0.9 and out["confidence"] > out["test_confidence"]
