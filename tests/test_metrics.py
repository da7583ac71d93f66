"""Known-answer tests for the evaluation metrics."""
import math

import pytest
import torch

from jemkit.evaluation.calibration import expected_calibration_error, reliability_bins
from jemkit.evaluation.classification import classification_metrics
from jemkit.evaluation.ood import aupr, auroc, auroc_standard_error, fpr_at_tpr, ood_scores


def test_perfect_classifier_has_ece_zero_and_accuracy_one():
    y = torch.arange(10).repeat(20)
    logits = torch.full((200, 10), -50.0).scatter_(1, y.view(-1, 1), 50.0)
    assert expected_calibration_error(logits, y) == pytest.approx(0.0, abs=1e-6)
    m = classification_metrics(logits, y)
    assert m["accuracy"] == 1.0 and m["nll"] == pytest.approx(0.0, abs=1e-6)


def test_ece_of_a_known_miscalibration():
    # every prediction has confidence 0.9 but only half are right: ECE = |0.5 − 0.9| = 0.4
    p = torch.tensor([0.9, 0.1])
    logits = p.log().repeat(100, 1)
    y = torch.tensor([0, 1]).repeat(50)
    assert expected_calibration_error(logits, y) == pytest.approx(0.4, abs=1e-5)
    rel = reliability_bins(logits, y, bins=20)
    assert sum(rel["count"]) == 100 and rel["count"][18] == 100  # 0.9 falls in bin [0.90, 0.95)
    assert rel["accuracy"][18] == pytest.approx(0.5)


def test_separated_scores():
    s_in, s_out = torch.linspace(1, 2, 50), torch.linspace(-2, -1, 70)
    assert auroc(s_in, s_out) == 1.0 and aupr(s_in, s_out) == pytest.approx(1.0)
    assert fpr_at_tpr(s_in, s_out) == 0.0
    assert auroc(s_out, s_in) == 0.0 and fpr_at_tpr(s_out, s_in) == 1.0


def test_fpr95_counts_accepted_ood():
    s_in = torch.arange(100.0)  # threshold keeping 95% of in-distribution is 5.0
    s_out = torch.tensor([10.0, 4.0, 3.0, -1.0])  # one of four OOD scores is above it
    assert fpr_at_tpr(s_in, s_out) == pytest.approx(0.25)


def test_ood_scores_match_definitions(tiny_energy):
    tiny_energy.eval()
    x = torch.rand(6, 16)
    s = ood_scores(tiny_energy, x, temperature=2.0)
    logits = tiny_energy.net(x)
    assert torch.allclose(s["logp"], torch.logsumexp(logits, 1).detach(), atol=1e-6)
    assert torch.allclose(s["maxprob"], logits.softmax(1).max(1).values.detach(), atol=1e-6)
    assert torch.allclose(s["energy"], (2.0 * torch.logsumexp(logits / 2.0, 1)).detach(), atol=1e-6)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(tiny_energy(xg).sum(), xg)
    assert torch.allclose(s["gradnorm"], -g.norm(dim=1), atol=1e-6)
    assert all(p.grad is None for p in tiny_energy.parameters())


def test_ood_scores_of_a_tilted_model_include_its_base(tiny_energy):
    """p(x) ∝ N(x) e^{−E(x)}: logp = log N(x) − E(x) and gradnorm is that density's; maxprob and energy unchanged."""
    from jemkit.sampling.gaussian import Gaussian, RidgedGaussian

    tiny_energy.eval()
    torch.manual_seed(0)
    base = RidgedGaussian(Gaussian.fit(torch.randn(500, 16) * 0.5 + 0.2), 0.01)
    x = torch.rand(6, 16)
    plain, tilted = ood_scores(tiny_energy, x), ood_scores(tiny_energy, x, base=base)
    log_n = base.log_prob(x).float()
    assert torch.allclose(tilted["logp"], plain["logp"] + log_n, atol=1e-3)
    assert torch.equal(tilted["maxprob"], plain["maxprob"]) and torch.equal(tilted["energy"], plain["energy"])
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((tiny_energy(xg) - base.log_density(xg)).sum(), xg)
    assert torch.allclose(tilted["gradnorm"], -g.norm(dim=1), atol=1e-4)


def test_ood_scores_known_answers():
    """Logits (w·x, log 3): logp = log(e^{w·x} + 3), gradnorm = −σ(w·x − log 3)‖w‖; at w·x = 0 the class
    probabilities are (1/4, 3/4) and the T = 2 energy score is 2 log(1 + √3)."""
    from jemkit.energy import ClassifierEnergy

    w = torch.tensor([3.0, -4.0])
    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.copy_(torch.stack([w, torch.zeros(2)]))
        net.bias.copy_(torch.tensor([0.0, math.log(3)]))
    x = torch.tensor([[0.0, 0.0], [0.4, 0.3], [1.0, 0.0]])  # w·x = 0, 0, 3
    s = ood_scores(ClassifierEnergy(net), x, temperature=2.0)
    torch.testing.assert_close(s["logp"], torch.tensor([math.log(4), math.log(4), math.log(math.exp(3) + 3)]))
    assert s["maxprob"][:2].tolist() == pytest.approx([0.75, 0.75])
    assert s["energy"][0].item() == pytest.approx(2 * math.log(1 + math.sqrt(3)))
    sig = lambda a: 1 / (1 + 3 * math.exp(-a))  # σ(a − log 3)
    assert s["gradnorm"].tolist() == pytest.approx([-5 * sig(0), -5 * sig(0), -5 * sig(3)])


def test_auroc_standard_error_matches_the_spread_of_repeated_draws() -> None:
    """Hanley & McNeil's SE against the standard deviation of AUROCs over 400 redraws of two score sets."""
    g = torch.Generator().manual_seed(0)
    n_in, n_out = 150, 100
    draws = torch.tensor([auroc(torch.randn(n_in, generator=g) + 1.5, torch.randn(n_out, generator=g)) for _ in range(400)])
    se = auroc_standard_error(draws.mean().item(), n_in, n_out)
    assert draws.std().item() == pytest.approx(se, rel=0.2)
    assert auroc_standard_error(0.5, 100, 100) == pytest.approx(math.sqrt((0.25 + 2 * 99 / 12) / 100 ** 2))
    assert auroc_standard_error(1.0, 100, 100) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        auroc_standard_error(0.9, 0, 10)
