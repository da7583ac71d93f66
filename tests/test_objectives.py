"""Objectives on analytic cases: values, and the direction one gradient step moves the energies."""
import pytest
import torch

from jemkit.config import SamplerConfig, TrainConfig
from jemkit.objectives import jem_hybrid, joint_contrastive
from jemkit.sampling import ReplayBuffer
from jemkit.sampling import make_sampler
from jemkit.training.steps import jem_step


def _sgd_step(energy, loss, lr=0.05):
    params = [p for p in energy.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(lr * g)


def test_contrastive_term_pushes_data_energy_down_and_sample_energy_up(tiny_energy):
    tiny_energy.eval()
    g = torch.Generator().manual_seed(0)
    x, x_q, y = torch.rand(32, 16, generator=g), torch.rand(32, 16, generator=g) * 4 - 2, torch.randint(0, 3, (32,), generator=g)
    with torch.no_grad():
        before = tiny_energy(x).mean(), tiny_energy(x_q).mean()
    out = jem_hybrid(tiny_energy, x, y, x_q, pyx_weight=0.0)
    _sgd_step(tiny_energy, out.loss)
    with torch.no_grad():
        after = tiny_energy(x).mean(), tiny_energy(x_q).mean()
    assert after[0] < before[0] and after[1] > before[1]


def test_joint_term_value_and_direction(tiny_energy):
    tiny_energy.eval()
    g = torch.Generator().manual_seed(1)
    x, x_q, y = torch.rand(16, 16, generator=g), torch.rand(16, 16, generator=g) * 4 - 2, torch.randint(0, 3, (16,), generator=g)
    out = joint_contrastive(tiny_energy, x, y, x_q)
    logits, logits_q = tiny_energy.net(x), tiny_energy.net(x_q)
    expected = -logits.gather(1, y[:, None]).mean() + logits_q.gather(1, y[:, None]).mean()
    assert torch.allclose(out.loss, expected, atol=1e-6)
    with torch.no_grad():
        before = tiny_energy(x, y).mean(), tiny_energy(x_q, y).mean()
    _sgd_step(tiny_energy, out.loss)
    with torch.no_grad():
        assert tiny_energy(x, y).mean() < before[0] and tiny_energy(x_q, y).mean() > before[1]


def test_jem_step_with_class_conditional_buffer(tiny_energy):
    g = torch.Generator().manual_seed(0)
    buffer = ReplayBuffer(30, (16,), num_classes=3, reinit=0.0, generator=g)
    before = buffer.x.clone()
    x, y = torch.rand(8, 16, generator=g), torch.randint(0, 3, (8,), generator=g)
    sampler = make_sampler(SamplerConfig(steps=2, step_size=0.1))
    out = jem_step(tiny_energy, x, y, sampler=sampler, buffer=buffer, train=TrainConfig(pxy_weight=1.0), generator=g)
    assert {"ce", "gap", "gap_xy", "sgld_grad_norm"} <= set(out.stats)
    changed = (buffer.x != before).any(1).nonzero().squeeze(1)
    assert 0 < len(changed) <= 16  # two draws of 8 chains were advanced and written back
    assert torch.isfinite(out.loss)


def test_mala_step_logs_acceptance(tiny_energy):
    g = torch.Generator().manual_seed(0)
    buffer = ReplayBuffer(20, (16,), generator=g)
    sampler = make_sampler(SamplerConfig(name="mala", steps=3, step_size=1e-3))
    out = jem_step(tiny_energy, torch.rand(4, 16), torch.tensor([0, 1, 2, 0]), sampler=sampler, buffer=buffer,
                   train=TrainConfig(), generator=g)
    assert 0.0 <= out.stats["accept_rate"].item() <= 1.0


def test_semi_supervised_uses_unlabeled_images_for_log_px(tiny_energy):
    tiny_energy.eval()
    g = torch.Generator().manual_seed(0)
    x, x_u, x_q = (torch.rand(8, 16, generator=g) for _ in range(3))
    y = torch.randint(0, 3, (8,), generator=g)
    out = jem_hybrid(tiny_energy, x, y, x_q, x_unlabeled=x_u)
    with torch.no_grad():
        assert torch.allclose(out.stats["e_data"], tiny_energy(x_u).mean())
        assert not torch.allclose(out.stats["e_data"], tiny_energy(x).mean())


def test_labelled_subset_is_balanced_and_seeded():
    from jemkit.data import labelled_subset

    y = torch.arange(10).repeat(30)
    a, b = labelled_subset(y, 4, 10, seed=1), labelled_subset(y, 4, 10, seed=1)
    assert torch.equal(a, b) and torch.equal(torch.bincount(y[a]), torch.full((10,), 4))
    assert not torch.equal(a, labelled_subset(y, 4, 10, seed=2))


def test_contrastive_divergence_value(tiny_energy):
    from jemkit.objectives import contrastive_divergence

    tiny_energy.eval()
    x, x_q = torch.rand(6, 16), torch.rand(6, 16)
    out = contrastive_divergence(tiny_energy, x, x_q, energy_l2=0.5)
    e, e_q = tiny_energy(x), tiny_energy(x_q)
    expected = e.mean() - e_q.mean() + 0.5 * (e.pow(2).mean() + e_q.pow(2).mean())
    assert torch.allclose(out.loss, expected, atol=1e-6)


def test_cd_k_starts_chains_at_the_data(tiny_energy):
    from jemkit.training.steps import Chains

    seen = []
    sampler = lambda energy, x, y=None, generator=None, callback=None: seen.append(x.clone()) or x + 1
    x = torch.rand(4, 16)
    out = Chains(tiny_energy, sampler, None, TrainConfig(chain_init="data"), None).advance(x)
    assert torch.equal(seen[0], x) and torch.equal(out, x + 1)


def test_spectral_norm_bounds_layers():
    from jemkit.nets import build_net

    net = build_net("cnn", 1, 10, width=8, spectral_norm=True)
    net(torch.randn(2, 1, 8, 8))  # power iterations run in train mode
    w = net.head.weight
    assert torch.linalg.matrix_norm(w, ord=2) < 1.05
    assert any("parametrizations" in k for k in net.state_dict())


def test_sample_input_noise_reaches_the_loss_but_not_the_buffer(tiny_energy):
    """train.sample_input_noise: the loss sees x_sampled + N(0, σ²) (matching the data's input noise);
    the buffer keeps the clean chain."""
    from jemkit.training.steps import Chains

    g = torch.Generator().manual_seed(0)
    buffer = ReplayBuffer(500, (16,), reinit=0.0, generator=g)
    chain_out = []
    def sampler(energy, x, y=None, generator=None, callback=None):  # deterministic "chain", output recorded
        chain_out.append(x * 0.5)
        return chain_out[-1]
    out = Chains(tiny_energy, sampler, buffer, TrainConfig(sample_input_noise=0.1), g).advance(torch.rand(200, 16))
    noise = out - chain_out[0]
    assert abs(noise.std().item() - 0.1) < 0.01 and abs(noise.mean().item()) < 0.01
    pushed = torch.isin(buffer.x, chain_out[0]).all(1)  # rows of the buffer that hold clean chain outputs
    assert pushed.sum() > 100 and not torch.isin(buffer.x, out).any()
    out_plain = Chains(tiny_energy, sampler, buffer, TrainConfig(), g).advance(torch.rand(8, 16))
    assert torch.equal(out_plain, chain_out[-1])  # σ = 0 (default): the loss sees the chain itself


def test_tilted_likelihood_term_is_importance_sampled_maximum_likelihood(tiny_energy):
    """L = mean E(x) − Σ w_i E(x'_i) with w = softmax(−E(x')), no gradient through w: its gradient in the base
    energies is −w (the self-normalized estimate of E_p[∇θE]), in the data energies 1/B."""
    from jemkit.objectives import jem_tilted, tilted_likelihood_term

    e_data = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    e_base = torch.tensor([1.0, 3.0, -2.0, 0.0], requires_grad=True)
    loss, stats = tilted_likelihood_term(e_data, e_base)
    loss.backward()
    w = torch.softmax(-e_base.detach(), 0)
    assert torch.allclose(e_data.grad, torch.full((3,), 1 / 3)) and torch.allclose(e_base.grad, -w)
    assert loss.item() == pytest.approx(e_data.mean().item() - (w * e_base).sum().item())
    assert stats["ess"].item() == pytest.approx(1 / w.pow(2).sum().item())
    # equal base energies: every draw counts, ESS = M; the L2 term weighs the base energies by w too
    flat, _ = tilted_likelihood_term(torch.zeros(2), torch.ones(4), energy_l2=0.5)
    assert flat.item() == pytest.approx(-1.0 + 0.5 * 1.0)
    x, y = torch.rand(5, 16), torch.randint(0, 3, (5,))
    out = jem_tilted(tiny_energy, x, y, torch.rand(7, 16), px_weight=0.5)
    assert out.loss.isfinite() and {"ce", "e_data", "e_sample", "gap", "ess"} <= set(out.stats)
