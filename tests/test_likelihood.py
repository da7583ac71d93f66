"""AIS estimates of log Z on energies with known normalizers, and the likelihood suite."""
import math

import pytest
import torch
from torch import nn

import jemkit
from jemkit.evaluation.likelihood import GaussianBase, UniformBox, WhitenedGaussian, ais_log_z, sigmoid_schedule, suite_likelihood
from jemkit.sampling.gaussian import Gaussian, RidgedGaussian, quantization_variance, ridges
from jemkit.model import Classifier

from conftest import DEVICES, TinyNet, make_ctx


def gaussian_energy(mu: float, sigma: float, shift: float = 0.0):
    """E(x) = ½‖x − μ‖² / σ² + c on R^D: Z = (2πσ²)^{D/2} · e^{−c}."""
    return lambda x, y=None: 0.5 * ((x - mu) / sigma).pow(2).flatten(1).sum(1) + shift


def tilt_energy(a: float, shift: float = 0.0):
    """E(x) = a Σ x_i + c on the box [−1, 1]^D: Z = (2 sinh(a) / a)^D · e^{−c}."""
    return lambda x, y=None: a * x.flatten(1).sum(1) + shift


@pytest.mark.parametrize("device", DEVICES)
def test_ais_recovers_a_gaussian_normalizer(device):
    d, mu, sigma = 8, 0.7, 0.4
    true = 0.5 * d * math.log(2 * math.pi * sigma**2)
    base = GaussianBase((d,), device=device, dtype=torch.float64)
    res = ais_log_z(gaussian_energy(mu, sigma), base, 64, 200, generator=torch.Generator(device).manual_seed(0))
    assert abs(res.log_z - true) < 3 * res.stderr + 0.02, (res.log_z, true, res.stderr)
    assert 0 < res.stderr < 0.5 and 0.3 < res.acceptance < 0.9
    assert res.log_weights.shape == (64,) and res.samples.shape == (64, d)
    # the chains end near the target N(μ, σ²)
    assert abs(res.samples.mean().item() - mu) < 0.1 and abs(res.samples.std().item() - sigma) < 0.1


def test_ais_recovers_a_box_normalizer_and_tracks_a_constant_shift():
    d, a, c = 8, 1.5, 2.0
    true = d * math.log(2 * math.sinh(a) / a)
    base = UniformBox((d,), dtype=torch.float64)
    run = lambda shift: ais_log_z(tilt_energy(a, shift), base, 64, 200, generator=torch.Generator().manual_seed(1))
    res, shifted = run(0.0), run(c)
    assert abs(res.log_z - true) < 3 * res.stderr + 0.02, (res.log_z, true, res.stderr)
    assert res.samples.abs().max() <= 1.0
    # E + c  ⇒  log Z − c; and the check above is sharp enough to notice a shift of this size
    assert shifted.log_z == pytest.approx(res.log_z - c, abs=1e-6)
    assert abs(shifted.log_z - true) > 3 * shifted.stderr + 0.02


def test_bidirectional_ais_sandwiches_log_z():
    """Reverse AIS from the forward chains' end: with a good schedule both ends agree with the truth; with a
    poor one the forward estimate falls below log Z and the reverse one lands above it (BDMC's sandwich)."""
    d, mu, sigma = 8, 0.7, 0.1
    true = 0.5 * d * math.log(2 * math.pi * sigma**2)
    base = GaussianBase((d,), dtype=torch.float64)
    run = lambda temps, seed: ais_log_z(gaussian_energy(mu, sigma), base, 64, temps, bidirectional=True,
                                        generator=torch.Generator().manual_seed(seed))
    good = run(300, 0)
    assert abs(good.log_z - true) < 3 * good.stderr + 0.05 and abs(good.reverse.log_z - true) < 3 * good.reverse.stderr + 0.05
    assert good.reverse.log_weights.shape == (64,) and 0.3 < good.reverse.acceptance < 0.9
    for seed in range(3):
        poor = run(3, seed)
        assert poor.log_z < true - 5 < true + 1 < poor.reverse.log_z, (poor.log_z, true, poor.reverse.log_z)
    assert ais_log_z(gaussian_energy(mu, sigma), base, 4, 3).reverse is None  # off by default


def test_gaussian_density_and_ridge_choice():
    torch.manual_seed(0)
    cov = torch.tensor([[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.2]], dtype=torch.float64)
    x = torch.distributions.MultivariateNormal(torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64), cov).sample((4000,))
    x = (x * 127.5).round() / 127.5  # quantized to steps of 1/127.5, as 8-bit images on [−1, 1] are
    assert quantization_variance(x) == pytest.approx((1 / 127.5) ** 2 / 12)
    fitted = Gaussian.fit(x.view(-1, 1, 1, 3))
    assert torch.allclose(fitted.cov, torch.cov(x.T, correction=0), atol=1e-10)
    exact = torch.distributions.MultivariateNormal(fitted.mean, fitted.cov + 0.01 * torch.eye(3, dtype=torch.float64))
    assert torch.allclose(fitted.log_prob(x[:5].view(-1, 1, 1, 3), 0.01), exact.log_prob(x[:5]), atol=1e-9)
    grid = ridges(x)
    assert grid[0] == quantization_variance(x) and len(grid) == 11 and grid[-1] == pytest.approx(grid[0] * 1e5)
    assert Gaussian.select_ridge(x) <= 0.02  # well-conditioned data (eigenvalues > 0.15): a small ridge wins on held-out rows
    # a pixel that is constant in the fitting rows but not in the held-out ones needs a large ridge
    y = x.clone()
    y[:3600, 2] = 0.0
    assert Gaussian.select_ridge(y) >= 1e-2 and Gaussian.select_ridge(y) in grid
    with pytest.raises(ValueError, match="both sides"):
        Gaussian.select_ridge(x[:1])
    with pytest.raises(ValueError, match="single pixel value"):
        quantization_variance(torch.zeros(3, 4))


def test_bases_are_normalized_in_their_charts():
    u = torch.linspace(-30, 30, 200_001, dtype=torch.float64).view(-1, 1)
    for base in (UniformBox((1,), dtype=torch.float64), GaussianBase((1,), mean=0.3, std=2.0, dtype=torch.float64)):
        assert torch.trapezoid(base.log_prob(u).exp(), u.squeeze(1)).item() == pytest.approx(1.0, abs=1e-6)
    x = torch.tanh(UniformBox((1000,)).sample(4, generator=torch.Generator().manual_seed(0)))
    assert x.abs().max() < 1 and abs(x.mean().item()) < 0.03 and abs(x.var().item() - 1 / 3) < 0.03


def test_schedule_and_arguments():
    b = sigmoid_schedule(10)
    assert len(b) == 11 and b[0] == 0.0 and b[-1] == pytest.approx(1.0) and all(p < q for p, q in zip(b, b[1:]))
    with pytest.raises(ValueError, match="n_chains"):
        ais_log_z(gaussian_energy(0, 1), GaussianBase((2,)), 1, 5)


def test_ais_leaves_a_module_energy_untouched():
    torch.manual_seed(0)
    energy = jemkit.ClassifierEnergy(TinyNet(d=16, k=3)).train()
    ais_log_z(energy, UniformBox((16,)), 4, 3, generator=torch.Generator().manual_seed(0))
    assert energy.training and all(m.training for m in energy.modules())
    assert all(p.grad is None and p.requires_grad for p in energy.parameters())


def test_ridged_gaussian_draws_its_density_and_whitens_it():
    torch.manual_seed(0)
    cov = torch.tensor([[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.2]], dtype=torch.float64)
    x = torch.distributions.MultivariateNormal(torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64), cov).sample((4000,))
    g = RidgedGaussian(Gaussian.fit(x.view(-1, 1, 1, 3)), 0.05)
    draws = g.sample(20000, (1, 1, 3), generator=torch.Generator().manual_seed(1)).view(-1, 3).double()
    assert draws.dtype == torch.float64 and torch.allclose(draws.mean(0), g.gaussian.mean, atol=0.03)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16 training step draws float32 samples all the same
        assert g.sample(4, (1, 1, 3)).dtype == torch.float32
    assert torch.allclose(torch.cov(draws.T), g.gaussian.cov + 0.05 * torch.eye(3, dtype=torch.float64), atol=0.03)
    # the float density (differentiable, on the device) is the float64 one; whitened, the base is N(0, I)
    assert torch.allclose(g.log_density(x[:5].float()).double(), g.log_prob(x[:5].view(-1, 1, 1, 3)), atol=1e-4)
    base = WhitenedGaussian((1, 1, 3), g, dtype=torch.float64)
    u = base.sample(5, generator=torch.Generator().manual_seed(2))
    xs, log_jac = base.to_data(u)
    # in the chart, log N(x(u)) + log|det L| = log φ(u): the base moves into the target of a tilted model
    assert torch.allclose(log_jac, g.log_prob(xs) + g.log_det_tril, atol=1e-4)
    assert torch.allclose(log_jac, base.log_prob(u))


def linear_logit_model(a: float, c: float) -> Classifier:
    """One logit f(x) = a Σ x_i + c on 8×8 images, so E(x) = −a Σ x_i − c on [−1, 1]^64."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    with torch.no_grad():
        net[1].weight.fill_(a)
        net[1].bias.fill_(c)
    model = Classifier(net, (1, 8, 8), 1).eval()
    model.record = {}
    return model


def test_suite_likelihood_of_a_tilted_box_density(digits, tmp_path):
    """E(x) = −a Σ x_i − c: Z = (2 sinh(a) / a)^D e^c, so log p(x) = a Σ x_i + c − log Z in closed form."""
    d, a, c = 64, 0.5, 3.0
    true_log_z = d * math.log(2 * math.sinh(a) / a) + c
    out = suite_likelihood(make_ctx(linear_logit_model(a, c), digits, tmp_path), n_chains=64, n_temps=200)["likelihood"]
    tol = 3 * out["log_z_stderr"] + 0.05
    assert abs(out["log_z"] - true_log_z) < tol, (out["log_z"], true_log_z, out["log_z_stderr"])
    logp = (a * digits.x_test.flatten(1).sum(1) + c - true_log_z).double()
    assert abs(out["logp_test"] - logp.mean().item()) < tol
    assert out["logp_test_std"] == pytest.approx(logp.std().item(), rel=1e-4)
    assert abs(out["bpd"] + logp.mean().item() / (d * math.log(2))) < tol / (d * math.log(2))
    # the reverse run agrees here (easy target): the sandwich is narrow and the gap is the two ends' distance
    assert abs(out["log_z_reverse"] - true_log_z) < 3 * out["log_z_reverse_stderr"] + 0.05
    assert out["bpd_gap"] == pytest.approx(out["bpd_reverse"] - out["bpd"])
    assert out["log_z_gap"] == pytest.approx(out["bpd_gap"] * d * math.log(2))
    assert abs(out["log_z_gap"]) < 3 * (out["log_z_stderr"] + out["log_z_reverse_stderr"]) + 0.1
    # the yardstick: a Gaussian fitted to the digits, far better than this tilted box density
    gauss = Gaussian.fit(digits.x_train).log_prob(digits.x_test, out["gaussian_ridge"])
    assert out["bpd_gaussian"] == pytest.approx(-gauss.mean().item() / (d * math.log(2)))
    assert out["bpd_gaussian"] < out["bpd"] and out["beats_gaussian"] is False
    # and its log density as an OOD score, on the ood suite's sets: noise is far less likely than digits
    assert set(out["gaussian_ood_auroc"]) == {"uniform", "gaussian", "constant", "flip", "interp"}  # no digits set for the digits
    assert out["gaussian_ood_auroc"]["uniform"] > 0.99 and out["gaussian_ood_auroc"]["gaussian"] > 0.99


def test_suite_likelihood_of_a_constant_energy_is_the_uniform_density(digits, tmp_path):
    """Constant E: p is uniform on [−1, 1]^D, density 2^−D: log Z = D log 2 − E exactly (all AIS weights are
    equal), one bit per dimension, and log2(127.5) more on the 8-bit scale."""
    out = suite_likelihood(make_ctx(linear_logit_model(0.0, 2.0), digits, tmp_path))["likelihood"]
    assert out["log_z"] == pytest.approx(64 * math.log(2) + 2.0, abs=1e-3)
    assert out["log_z_stderr"] == pytest.approx(0.0, abs=1e-5) and out["ess"] == pytest.approx(8.0, rel=1e-4)
    assert out["logp_test"] == pytest.approx(-64 * math.log(2), abs=1e-3)
    assert out["bpd"] == pytest.approx(1.0, abs=1e-5)
    assert out["bpd_8bit"] == pytest.approx(1.0 + math.log2(127.5), abs=1e-5)
    assert out["log_z_reverse"] == pytest.approx(out["log_z"], abs=1e-3) and out["bpd_gap"] == pytest.approx(0.0, abs=1e-5)


def test_likelihood_options(model, digits, tmp_path):
    ctx = make_ctx(model, digits, tmp_path)
    ctx.options["likelihood"] = {"n_temps": 4, "bidirectional": False}
    out = suite_likelihood(ctx)["likelihood"]
    assert (out["n_chains"], out["n_temps"], out["bidirectional"]) == (8, 4, False) and "log_z_reverse" not in out
    ctx.options["likelihood"] = {"n_temp": 4}
    with pytest.raises(ValueError, match="n_temps"):
        suite_likelihood(ctx)
    ctx.options["likelihood"] = {"n_chains": 0}
    with pytest.raises(ValueError, match="n_chains must be an integer >= 1"):
        suite_likelihood(ctx)


def test_suite_likelihood_quick(model, digits, tmp_path):
    out = suite_likelihood(make_ctx(model, digits, tmp_path))["likelihood"]
    assert (out["n_chains"], out["n_temps"]) == (8, 20)
    assert math.isfinite(out["log_z"]) and out["log_z_stderr"] >= 0 and 1 <= out["ess"] <= 8
    assert (tmp_path / "likelihood_ais_samples.png").is_file()
    assert all(p.grad is None for p in model.parameters()) and not model.training
    assert suite_likelihood(make_ctx(model, digits, tmp_path, label="baseline"))["likelihood"] == out
    assert (tmp_path / "baseline_likelihood_ais_samples.png").is_file()
    assert suite_likelihood(make_ctx(model, digits, tmp_path, seed=5))["likelihood"]["log_z"] != out["log_z"]


def test_suite_likelihood_of_a_tilted_gaussian(digits, tmp_path):
    """A tilted model (record objective ``tilt``), p(x) ∝ N(x) e^{−E(x)} with E(x) = −a Σ x_i − c: the tilt's
    normalizer is E_N[e^{a 1ᵀx + c}] = exp(c + a 1ᵀμ + ½ a² 1ᵀ(Σ + ridge·I)1) in closed form, and log p(x) is
    a Gaussian again. With a = 0 the model is the yardstick Gaussian itself."""
    d, a, c = 64, 0.05, 3.0
    model = linear_logit_model(a, c)
    model.record = {"objective": "tilt"}
    out = suite_likelihood(make_ctx(model, digits, tmp_path), n_chains=64, n_temps=200)["likelihood"]
    g = RidgedGaussian(Gaussian.fit(digits.x_train), out["gaussian_ridge"])
    cov = g.gaussian.cov + g.ridge * torch.eye(d, dtype=torch.float64)
    true_log_z = c + a * g.gaussian.mean.sum().item() + 0.5 * a**2 * cov.sum().item()
    assert out["base"] == "gaussian"
    assert abs(out["log_z"] - true_log_z) < 3 * out["log_z_stderr"] + 0.05, (out["log_z"], true_log_z)
    logp = g.log_prob(digits.x_test) + a * digits.x_test.flatten(1).sum(1).double() + c - true_log_z
    assert abs(out["logp_test"] - logp.mean().item()) < 3 * out["log_z_stderr"] + 0.05
    flat = Gaussian.fit(digits.x_train).log_prob(digits.x_test, out["gaussian_ridge"])
    assert out["bpd_gaussian"] == pytest.approx(-flat.mean().item() / (d * math.log(2)))
    # a = 0: every AIS weight is e^{c}, the density is the Gaussian's, to the last digit
    zero = linear_logit_model(0.0, c)
    zero.record = {"objective": "tilt"}
    same = suite_likelihood(make_ctx(zero, digits, tmp_path))["likelihood"]
    assert same["log_z"] == pytest.approx(c, abs=1e-4) and same["bpd"] == pytest.approx(same["bpd_gaussian"], abs=1e-6)
    # an untilted model with the same energy is a density on the box: another base, another log Z
    plain = suite_likelihood(make_ctx(linear_logit_model(0.0, c), digits, tmp_path))["likelihood"]
    assert plain["base"] == "uniform" and plain["bpd"] == pytest.approx(1.0, abs=1e-5)
    # its base is its own training images' Gaussian: another dataset's is refused
    zero.record = {"objective": "tilt", "dataset": "fashion-mnist"}
    with pytest.raises(ValueError, match="evaluate it on fashion-mnist"):
        suite_likelihood(make_ctx(zero, digits, tmp_path))
