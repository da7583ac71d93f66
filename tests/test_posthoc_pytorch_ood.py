"""Parity with pytorch-ood (a test-only dependency): the energy score (Liu et al. 2020), AUROC, FPR95 and
the energy-bounded loss agree on one tiny model and data set; AUPR-In differs by its integration rule.

Conventions: pytorch-ood's scores are outlier scores (higher = more OOD) and OOD (label < 0) is its
positive class; jemkit's scores rank in-distribution higher and in-distribution is positive. So
pytorch-ood's EnergyBased = −(jemkit's energy score), the AUROCs are equal, and pytorch-ood's FPR95TPR
(ID flagged when 95% of OOD is caught) is jemkit's fpr_at_tpr with the roles of the two sets swapped.
"""
import pytest
import torch
from torch import nn

pytest.importorskip("pytorch_ood")
from pytorch_ood.detector import EnergyBased  # noqa: E402
from pytorch_ood.loss import EnergyRegularizedLoss  # noqa: E402
from pytorch_ood.metrics import OODMetrics  # noqa: E402

from torchmetrics.functional.classification import binary_precision_recall_curve  # noqa: E402

from jemkit.energy import ClassifierEnergy  # noqa: E402
from jemkit.evaluation.ood import aupr, auroc, fpr_at_tpr, ood_scores  # noqa: E402
from jemkit.objectives import energy_oe  # noqa: E402


@pytest.fixture
def tiny():
    """A seeded linear classifier on 1×8×8 images, in-distribution images and outliers of half the range."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(5, 64, generator=g) * 0.3)
        net[1].bias.zero_()
    x_in = torch.rand(300, 1, 8, 8, generator=g) * 2 - 1
    x_out = torch.rand(200, 1, 8, 8, generator=g) - 0.5  # smaller inputs, smaller logits: higher energy
    return net, x_in, x_out


def _pytorch_ood_metrics(outlier_in: torch.Tensor, outlier_out: torch.Tensor) -> dict[str, float]:
    metrics = OODMetrics()
    metrics.update(torch.cat([outlier_in, outlier_out]), torch.cat([torch.zeros(len(outlier_in)), -torch.ones(len(outlier_out))]).long())
    return metrics.compute()


@pytest.mark.parametrize("t", [1.0, 2.0])
def test_energy_score_and_metrics_match_pytorch_ood(tiny, t):
    net, x_in, x_out = tiny
    ours_in = ood_scores(ClassifierEnergy(net), x_in, temperature=t)["energy"]
    ours_out = ood_scores(ClassifierEnergy(net), x_out, temperature=t)["energy"]
    detector = EnergyBased(net, t=t)
    with torch.no_grad():
        theirs_in, theirs_out = detector(x_in), detector(x_out)
    torch.testing.assert_close(ours_in, -theirs_in, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_out, -theirs_out, rtol=1e-5, atol=1e-5)
    m = _pytorch_ood_metrics(theirs_in, theirs_out)
    assert 0.6 < m["AUROC"] < 0.99  # neither trivial nor random: the comparison can tell them apart
    assert auroc(ours_in, ours_out) == pytest.approx(m["AUROC"], abs=1e-6)
    # AUPR-In: jemkit reports average precision (the step rule), pytorch-ood the trapezoid under the same curve
    precision, recall, _ = binary_precision_recall_curve(torch.cat([ours_in, ours_out]).double(),
                                                         torch.cat([torch.ones(len(ours_in)), torch.zeros(len(ours_out))]).long())
    assert -torch.trapezoid(precision, recall).item() == pytest.approx(m["AUPR-IN"], abs=1e-6)
    assert aupr(ours_in, ours_out) == pytest.approx(m["AUPR-IN"], abs=0.01)
    assert fpr_at_tpr(-ours_out, -ours_in) == pytest.approx(m["FPR95TPR"], abs=1e-6)


def test_energy_oe_matches_pytorch_oods_energy_regularized_loss(tiny):
    net, x_in, x_out = tiny
    y = net(x_in).argmax(1).roll(1)  # labels the net mostly gets wrong: a non-zero CE
    ours = energy_oe(ClassifierEnergy(net), x_in, y, x_out, weight=0.1, m_in=-2.0, m_out=-1.0)
    logits = torch.cat([net(x_in), net(x_out)])
    theirs = EnergyRegularizedLoss(alpha=0.1, margin_in=-2.0, margin_out=-1.0)(logits, torch.cat([y, -torch.ones(len(x_out)).long()]))
    assert ours.stats["hinge_in"] > 0 and ours.stats["hinge_out"] > 0
    torch.testing.assert_close(ours.loss, theirs, rtol=1e-5, atol=1e-6)
