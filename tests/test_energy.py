import pytest
import torch

from jemkit.energy import ClassifierEnergy, Energy


def test_classifier_energy_sign_and_conditional(tiny_energy):
    tiny_energy.eval()
    x = torch.rand(5, 16)
    logits = tiny_energy.net(x)
    assert torch.allclose(tiny_energy(x), -torch.logsumexp(logits, 1))
    y = torch.tensor([2, 0, 1, 1, 0])
    assert torch.allclose(tiny_energy(x, y), -logits[torch.arange(5), y])
    # E(x) ≤ E(x, y) for every y: the marginal is at least as probable as any joint term
    assert (tiny_energy(x) <= tiny_energy(x, y) + 1e-6).all()
    assert isinstance(tiny_energy, Energy)


def test_temperature(tiny_energy):
    tiny_energy.eval()
    x = torch.rand(3, 16)
    hot = ClassifierEnergy(tiny_energy.net, temperature=2.0)
    assert torch.allclose(hot(x), -2.0 * torch.logsumexp(tiny_energy.net(x) / 2.0, 1))
    with pytest.raises(ValueError, match="temperature"):
        ClassifierEnergy(tiny_energy.net, temperature=0)
