"""Energy-bounded outlier exposure (Liu et al. 2020 §3.2): zero inside the margins, hand-computed values,
and one gradient step moving the energies the right way."""
import math

import pytest
import torch
from torch import nn

from jemkit.energy import ClassifierEnergy
from jemkit.objectives import energy_oe


def _identity_energy(temperature: float = 1.0) -> ClassifierEnergy:
    """Inputs are the logits themselves, so energies are set by hand."""
    return ClassifierEnergy(nn.Identity(), temperature)


def test_hinges_are_zero_inside_the_margins():
    x_in = torch.tensor([[30.0, 0.0, 0.0], [0.0, 26.0, 0.0]])  # E ≈ −30, −26: below m_in = −25
    x_out = torch.tensor([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]])  # E = −log 3, −log(e⁶ + 2) ≈ −6.005: above m_out = −7
    y = torch.tensor([0, 1])
    out = energy_oe(_identity_energy(), x_in, y, x_out)
    assert out.stats["hinge_in"].item() == 0.0 and out.stats["hinge_out"].item() == 0.0
    torch.testing.assert_close(out.loss, nn.functional.cross_entropy(x_in, y))


def test_value_matches_a_hand_computation():
    # logits (a, 0): E = −T log(e^{a/T} + 1); at T = 1 and a = 0, E = −log 2
    x_in = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]])  # E = −log 2, −log 4
    x_out = torch.tensor([[math.log(7), 0.0]])  # E = −log 8
    y = torch.tensor([1, 0])
    m_in, m_out, lam = -2.0, -1.0, 0.5
    out = energy_oe(_identity_energy(), x_in, y, x_out, weight=lam, m_in=m_in, m_out=m_out)
    ce = (math.log(2) + math.log(4 / 3)) / 2  # −log ½, −log ¾
    hinge_in = ((-math.log(2) - m_in) ** 2 + (-math.log(4) - m_in) ** 2) / 2
    hinge_out = (m_out + math.log(8)) ** 2
    assert out.stats["ce"].item() == pytest.approx(ce, rel=1e-6)
    assert out.stats["hinge_in"].item() == pytest.approx(hinge_in, rel=1e-6)
    assert out.stats["hinge_out"].item() == pytest.approx(hinge_out, rel=1e-6)
    assert out.stats["e_out"].item() == pytest.approx(-math.log(8), rel=1e-6)
    assert out.loss.item() == pytest.approx(ce + lam * (hinge_in + hinge_out), rel=1e-6)


def test_the_energy_uses_the_energys_temperature():
    x = torch.tensor([[0.0, 0.0]])  # E = −T log 2
    out = energy_oe(_identity_energy(2.0), x, torch.tensor([0]), x, m_in=-3.0, m_out=0.0)
    assert out.stats["e_in"].item() == pytest.approx(-2 * math.log(2))
    assert out.stats["hinge_in"].item() == pytest.approx((3 - 2 * math.log(2)) ** 2)
    assert out.stats["hinge_out"].item() == pytest.approx((2 * math.log(2)) ** 2)


def test_a_gradient_step_lowers_in_energies_and_raises_outlier_energies(tiny_energy):
    tiny_energy.eval()
    g = torch.Generator().manual_seed(0)
    x_in, x_out = torch.rand(32, 16, generator=g), torch.rand(32, 16, generator=g) * 4 - 2
    y = torch.randint(0, 3, (32,), generator=g)
    with torch.no_grad():
        before = tiny_energy(x_in).mean(), tiny_energy(x_out).mean()
    m_in, m_out = before[0].item() - 5, before[1].item() + 5  # both energies outside their margins
    out = energy_oe(tiny_energy, x_in, y, x_out, weight=1.0, m_in=m_in, m_out=m_out)
    assert out.stats["hinge_in"] > 0 and out.stats["hinge_out"] > 0
    params = list(tiny_energy.parameters())
    grads = torch.autograd.grad(out.loss, params)
    with torch.no_grad():
        for p, grad in zip(params, grads):
            p.sub_(0.01 * grad)
        after = tiny_energy(x_in).mean(), tiny_energy(x_out).mean()
    assert after[0] < before[0] and after[1] > before[1]
    assert all(not v.requires_grad for v in out.stats.values())


def test_margins_in_the_wrong_order_are_refused():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="m_in < m_out"):
        energy_oe(_identity_energy(), x, torch.tensor([0]), x, m_in=-5.0, m_out=-7.0)
