"""Contract tests over every sampler, and statistics of exact Langevin on a Gaussian."""

import pytest
import torch

from jemkit.sampling import SAMPLERS, fresh_chains, langevin, sgld
from jemkit.sampling import make_sampler
from jemkit.config import SamplerConfig

from conftest import DEVICES, GaussianEnergy


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_contract(name, dtype, device, tiny_energy):
    sampler = SAMPLERS[name]
    energy = tiny_energy.to(device=device, dtype=dtype)
    energy.train()
    energy.net.body[1].weight.requires_grad_(False)  # a mix of frozen and trainable parameters
    flags = {n: p.requires_grad for n, p in energy.named_parameters()}
    x0 = torch.rand(8, 1, 4, 4, device=device, dtype=dtype)
    x0_copy = x0.clone()

    out = sampler(energy, x0, steps=3, step_size=0.1, generator=torch.Generator(device).manual_seed(1))
    again = sampler(energy, x0, steps=3, step_size=0.1, generator=torch.Generator(device).manual_seed(1))
    other = sampler(energy, x0, steps=3, step_size=0.1, generator=torch.Generator(device).manual_seed(2))

    assert out.shape == x0.shape and out.dtype == dtype and out.device == x0.device
    assert not out.requires_grad
    assert torch.equal(out, again), "same generator seed must give the same chain"
    assert not torch.equal(out, other), "another seed must give another chain"
    assert torch.equal(x0, x0_copy), "the input must not be modified"
    assert all(m.training for m in energy.modules()), "train mode must be restored"
    assert {n: p.requires_grad for n, p in energy.named_parameters()} == flags
    assert all(p.grad is None for p in energy.parameters()), "no parameter gradients"


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_restores_eval_mode_and_runs_conditional(name, tiny_energy):
    tiny_energy.eval()
    y = torch.tensor([0, 1, 2, 0])
    out = SAMPLERS[name](tiny_energy, torch.rand(4, 16), steps=2, step_size=0.1, y=y)
    assert out.shape == (4, 16)
    assert not any(m.training for m in tiny_energy.modules())


def test_sampler_calls_callback_every_step(tiny_energy):
    seen = []
    sgld(tiny_energy, torch.rand(4, 16), steps=5, callback=lambda info: seen.append(info["step"]))
    assert seen == [0, 1, 2, 3, 4]


def test_sampler_rejects_bad_arguments(tiny_energy):
    with pytest.raises(ValueError, match="steps"):
        sgld(tiny_energy, torch.rand(2, 16), steps=-1)
    with pytest.raises(TypeError, match="floating"):
        sgld(tiny_energy, torch.zeros(2, 16, dtype=torch.long), steps=1)


def test_sampler_reports_divergence():
    blowup = lambda x, y=None: (x ** 4).sum(1) * 1e30
    with pytest.raises(FloatingPointError, match="non-finite"):
        sgld(blowup, torch.full((2, 3), 10.0), steps=5, step_size=1.0)


def test_sgld_moves_downhill_on_energy(tiny_energy):
    x0 = torch.rand(64, 16) * 2 - 1
    x = sgld(tiny_energy, x0, steps=20, step_size=0.5, noise=0.0)
    tiny_energy.eval()
    with torch.no_grad():
        assert tiny_energy(x).mean() < tiny_energy(x0).mean() - 0.1


def test_exact_langevin_reaches_gaussian_mean_and_covariance():
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)
    energy = GaussianEnergy(mean, cov)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4000, 2, generator=g, dtype=torch.float64) * 3
    x = langevin(energy, x0, steps=1500, step_size=0.005, generator=g)
    emp_mean, emp_cov = x.mean(0), torch.cov(x.T)
    # standard error of the mean ≈ sqrt(1/4000) ≈ 0.016; discretization bias of η = 0.005 is < 1%
    assert torch.allclose(emp_mean, mean, atol=0.06), emp_mean
    assert torch.allclose(emp_cov, cov, atol=0.06), emp_cov


def test_jem_sgld_is_not_langevin_noise():
    """JEM's decoupled noise (0.01 at step 1) samples a much colder law than N(μ, Σ): documented departure."""
    energy = GaussianEnergy(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    x = sgld(energy, torch.randn(2000, 2, dtype=torch.float64), steps=200, step_size=0.1, noise=0.01,
             generator=torch.Generator().manual_seed(0))
    assert x.var(0).max() < 0.01  # exact Langevin would give variance 1


def test_fresh_chains_class_conditional(tiny_energy):
    sampler = make_sampler(SamplerConfig(steps=2, step_size=0.1))
    y = torch.arange(3).repeat_interleave(2)
    x = fresh_chains(tiny_energy, sampler, 6, (16,), y=y, generator=torch.Generator().manual_seed(0))
    assert x.shape == (6, 16) and x.abs().max() < 2


def test_make_sampler_unknown_name():
    with pytest.raises(ValueError, match="did you mean 'sgld'"):
        make_sampler(SamplerConfig(name="sgdl"))


@pytest.mark.parametrize("name", ["sgld", "langevin"])
def test_create_graph_is_differentiable_in_x(name, tiny_energy):
    """With create_graph=True the chain's output has a gradient w.r.t. its input (finite-difference check)."""
    tiny_energy = tiny_energy.double()
    x0 = (torch.rand(3, 16, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    run = lambda x: SAMPLERS[name](tiny_energy, x, steps=3, step_size=0.05, create_graph=True,
                                   generator=torch.Generator().manual_seed(0))
    out = run(x0)
    (g,) = torch.autograd.grad(out.pow(2).sum(), x0)
    direction = torch.randn_like(x0)
    h = 1e-5
    fd = (run(x0.detach() + h * direction).pow(2).sum() - run(x0.detach() - h * direction).pow(2).sum()) / (2 * h)
    assert torch.allclose((g * direction).sum(), fd, rtol=1e-4)
    assert all(p.grad is None for p in tiny_energy.parameters())


def test_mala_is_exact_where_unadjusted_langevin_is_biased():
    """At a large step η = 0.6 on N(0, I), ULA's stationary variance is 1/(1 − η/2) = 1.43; MALA's stays 1."""
    energy = GaussianEnergy(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3000, 2, generator=g, dtype=torch.float64)
    rates = []
    x_mala = SAMPLERS["mala"](energy, x0, steps=300, step_size=0.6, generator=g,
                              callback=lambda info: rates.append(float(info["accept"])))
    x_ula = langevin(energy, x0, steps=300, step_size=0.6, generator=g)
    assert abs(x_mala.var(0).mean().item() - 1.0) < 0.08
    assert abs(x_ula.var(0).mean().item() - 1 / (1 - 0.3)) < 0.1
    assert 0.3 < sum(rates) / len(rates) < 0.99


def test_sgld_grad_clip_and_clamp():
    energy = lambda x, y=None: (100.0 * x).sum(1)  # ∇E = 100 everywhere
    x = sgld(energy, torch.zeros(4, 3), steps=3, step_size=0.1, noise=0.0, grad_clip=1.0)
    assert torch.allclose(x, torch.full((4, 3), -0.3))  # each step moves 0.1 · clip(100, 1)
    x = sgld(energy, torch.zeros(4, 3), steps=3, step_size=0.1, noise=0.0, clamp=(-1.0, 1.0))
    assert torch.equal(x, torch.full((4, 3), -1.0))


def test_bf16_autocast_sampling_matches_float32_energies():
    """bf16 autocast changes the arithmetic, not the result: the sampled energies agree with float32."""
    from torch import nn

    class ConvQuadratic(nn.Module):  # a non-flat energy whose passes run convolutions
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, padding=1)

        def forward(self, x, y=None):
            return self.conv(x).pow(2).sum((1, 2, 3))

    torch.manual_seed(0)
    energy = ConvQuadratic()
    x0 = torch.rand(32, 1, 8, 8) * 2 - 1
    run = lambda dtype: sgld(energy, x0, steps=30, step_size=0.01, generator=torch.Generator().manual_seed(0),
                             autocast_dtype=dtype)
    x32, x16 = run(None), run(torch.bfloat16)
    assert x16.dtype == torch.float32
    with torch.no_grad():
        e0, e32, e16 = energy(x0).mean(), energy(x32).mean(), energy(x16).mean()
    assert e32 < 0.5 * e0 and e16 < 0.5 * e0  # both descend far
    assert abs(e16 - e32) < 0.02 * (e0 - e32)  # and land within 2% of float32's descent
    assert (x16 - x32).abs().max() < 0.05
