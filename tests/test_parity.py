"""Parity with JEM's equations, written out here independently of jemkit's code paths."""
import torch
import torch.nn.functional as F

from jemkit.objectives import discriminative, jem_hybrid
from jemkit.sampling import sgld


def reference_sgld_step(f, x, step_size, noise_std, eps):
    """Official JEM: x ← x + α ∇ₓ logsumexp f(x) + σ ε  (gradient *ascent* on −E)."""
    x = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(f(x).logsumexp(1).sum(), x)[0]
    return (x + step_size * grad + noise_std * eps).detach()


def test_one_sgld_step_matches_reference(tiny_energy):
    tiny_energy.eval()
    x = torch.rand(8, 16) * 2 - 1
    out = sgld(tiny_energy, x, steps=1, step_size=1.0, noise=0.01, generator=torch.Generator().manual_seed(5))
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    ref = reference_sgld_step(tiny_energy.net, x, 1.0, 0.01, eps)
    assert torch.allclose(out, ref, atol=1e-6)


def test_jem_loss_matches_reference(tiny_energy):
    tiny_energy.eval()
    f = tiny_energy.net
    g = torch.Generator().manual_seed(0)
    x, x_q = torch.rand(6, 16, generator=g), torch.rand(6, 16, generator=g)
    y = torch.tensor([0, 1, 2, 2, 1, 0])

    out = jem_hybrid(tiny_energy, x, y, x_q)
    ours = torch.autograd.grad(out.loss, list(f.parameters()))

    # official code: L = CE(f(x), y) − (logsumexp f(x) − logsumexp f(x_q)).mean()
    l_pyx = F.cross_entropy(f(x), y)
    l_px = -(f(x).logsumexp(1).mean() - f(x_q).logsumexp(1).mean())
    ref_loss = l_pyx + l_px
    ref = torch.autograd.grad(ref_loss, list(f.parameters()))

    assert torch.allclose(out.loss, ref_loss, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, ref))
    assert torch.allclose(out.stats["gap"], l_px, atol=1e-6)  # gap = E(x) − E(x_q)


def test_jem_loss_weights_and_l2(tiny_energy):
    tiny_energy.eval()
    x, x_q, y = torch.rand(4, 16), torch.rand(4, 16), torch.tensor([0, 1, 2, 0])
    e_x, e_q = tiny_energy(x), tiny_energy(x_q)
    ce = F.cross_entropy(tiny_energy.logits(x), y)
    out = jem_hybrid(tiny_energy, x, y, x_q, pyx_weight=0.5, px_weight=2.0, energy_l2=0.1)
    expected = 0.5 * ce + 2.0 * (e_x.mean() - e_q.mean() + 0.1 * (e_x.pow(2).mean() + e_q.pow(2).mean()))
    assert torch.allclose(out.loss, expected, atol=1e-6)


def test_discriminative_is_cross_entropy(tiny_energy):
    tiny_energy.eval()
    x, y = torch.rand(5, 16), torch.tensor([0, 1, 2, 1, 0])
    out = discriminative(tiny_energy, x, y)
    assert torch.allclose(out.loss, F.cross_entropy(tiny_energy.net(x), y))
    assert 0 <= out.stats["acc"] <= 1
