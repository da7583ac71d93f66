"""Inpainting: masks, the clamped energy, errors, and the suite on a Gaussian with a known posterior."""
import pytest
import torch
from torch import nn

import jemkit
from jemkit.data import ImageData
from jemkit.evaluation.inpainting import (
    MASKS, ClampedEnergy, GaussianFill, inpaint, lower_half_mask, masked_errors, random_pixel_mask, suite_inpainting,
)
from jemkit.model import Classifier
from jemkit.sampling import sgld

from conftest import DEVICES, GaussianEnergy, make_ctx


def test_masks_hide_what_they_say():
    x = torch.zeros(64, 3, 8, 8)
    lower = lower_half_mask(x)
    assert lower.dtype == torch.bool and lower.shape == x.shape
    assert lower[..., :4, :].all() and not lower[..., 4:, :].any()
    rand = random_pixel_mask(x, generator=torch.Generator().manual_seed(0))
    assert (rand == rand[:, :1]).all()  # one decision per pixel, shared by its channels
    assert 0.45 < (~rand).float().mean().item() < 0.55
    assert torch.equal(rand, random_pixel_mask(x, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("device", DEVICES)
def test_observed_pixels_never_change_and_missing_ones_follow_the_energy(device):
    # Gaussian energy centred on a known image: noiseless SGLD on the missing pixels must reach it
    d = 16
    target = torch.linspace(-0.8, 0.8, d, device=device).view(1, 1, 4, 4)
    energy = lambda x, y=None: GaussianEnergy(target.flatten(), torch.eye(d, device=device))(x.flatten(1))
    x_obs = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
    mask = lower_half_mask(x_obs)
    z0 = torch.full_like(x_obs, 0.5)
    out = inpaint(energy, x_obs, mask, z0, lambda e, z, generator=None: sgld(e, z, steps=60, step_size=0.2, noise=0.0))
    assert torch.equal(out[mask], x_obs[mask])
    torch.testing.assert_close(out[~mask], target.expand_as(out)[~mask], atol=1e-4, rtol=0)


def test_clamped_energy_has_no_gradient_on_observed_pixels(model, data):
    x = data.x_test[:4]
    mask = random_pixel_mask(x, generator=torch.Generator().manual_seed(1))
    z = torch.rand_like(x).requires_grad_(True)
    (g,) = torch.autograd.grad(ClampedEnergy(jemkit.ClassifierEnergy(model), x, mask)(z).sum(), z)
    assert (g[mask] == 0).all() and (g[~mask] != 0).any()
    with pytest.raises(ValueError, match="bool tensor"):
        ClampedEnergy(jemkit.ClassifierEnergy(model), x, mask.float())


def test_masked_errors_use_the_unit_pixel_scale_and_missing_pixels_only():
    x = torch.zeros(2, 1, 4, 4)
    mask = lower_half_mask(x)
    x_hat = torch.where(mask, x + 1.0, x + 0.2)  # observed errors are ignored
    err = masked_errors(x_hat, x, mask)
    assert err["mse"] == pytest.approx(0.01)  # (0.2 / 2)²
    assert err["psnr"] == pytest.approx(20.0)
    with pytest.raises(ValueError, match="no pixel"):
        masked_errors(x_hat, x, torch.ones_like(mask))


def test_suite_inpainting_quick(model, data, tmp_path):
    model.train()  # the suite samples in eval mode and must hand the module back as it found it
    try:
        out = suite_inpainting(make_ctx(model, data, tmp_path))["inpainting"]
        assert all(m.training for m in model.modules())
    finally:
        model.eval()
    assert (out["steps"], out["n_images"], out["n_samples"]) == (5, 16, 2)
    for name in MASKS:
        r = out[name]
        for kind in ("", "sample_", "mean_fill_"):
            assert 0 < r[f"{kind}mse"] < 1 and r[f"{kind}psnr"] > 0
    assert (tmp_path / "inpainting.png").is_file()
    assert all(p.grad is None for p in model.parameters())
    # the same seed reproduces every number; the baseline label prefixes the file
    again = suite_inpainting(make_ctx(model, data, tmp_path, label="baseline"))["inpainting"]
    assert again == out
    assert (tmp_path / "baseline_inpainting.png").is_file()
    other = suite_inpainting(make_ctx(model, data, tmp_path, seed=1))["inpainting"]
    assert other["random_pixels"]["mean_fill_mse"] != out["random_pixels"]["mean_fill_mse"]  # new mask


class GaussianLogit(nn.Module):
    """One logit f(x) = −½ xᵀΛx, so that E(x) = −logsumexp_y f(x)[y] = ½ xᵀΛx: the energy of N(0, Λ⁻¹)."""

    def __init__(self, cov: torch.Tensor):
        super().__init__()
        self.register_buffer("precision", torch.linalg.inv(cov))

    def forward(self, x):
        v = x.flatten(1)
        return -0.5 * ((v @ self.precision) * v).sum(1, keepdim=True)


def test_suite_inpainting_reaches_the_gaussian_posterior(tmp_path):
    """Images drawn from N(0, Σ), Σ = τ²I + s²11ᵀ (one brightness shared by all pixels), and a model whose
    energy is that Gaussian's, sampled by MALA (exact invariance): each completion of the lower half is a
    draw from the posterior N(m, Σ_post), m = Σ_mo Σ_oo⁻¹ x_o, so one completion errs by (m − x)² + σ²
    and the mean of K by (m − x)² + σ²/K (σ² the mean of diag Σ_post), far below the mean fill's s² + τ²."""
    d, s, tau, k = 16, 0.3, 0.2, 4
    cov = tau**2 * torch.eye(d, dtype=torch.float64) + s**2 * torch.ones(d, d, dtype=torch.float64)
    draw = lambda n, seed: (torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
                            @ torch.linalg.cholesky(cov).T).float().clamp(-1, 1).view(n, 1, 4, 4)
    x_train, x_test = draw(2000, 0), draw(1000, 1)
    zeros = lambda x: torch.zeros(len(x), dtype=torch.long)
    data = ImageData("gaussian", x_train, zeros(x_train), x_test, zeros(x_test), 1, ["x"])
    model = Classifier(GaussianLogit(cov.float()), (1, 4, 4), 1).eval()
    model.record = {"config": {"sampler": {"name": "mala", "step_size": 0.01}}, "num_classes": 1}
    out = suite_inpainting(make_ctx(model, data, tmp_path), n_images=len(x_test), steps=200, n_samples=k)["inpainting"]

    obs, mis = torch.arange(8), torch.arange(8, 16)  # lower half of a 4×4 image: pixels 8–15 missing
    gain = cov[mis][:, obs] @ torch.linalg.inv(cov[obs][:, obs])
    post_var = torch.diagonal(cov[mis][:, mis] - gain @ cov[obs][:, mis]).mean().item()
    v = x_test.flatten(1).double()
    bias = (v[:, obs] @ gain.T - v[:, mis]).pow(2).mean().item()  # (m − x)², [−1, 1] units
    lower = out["lower_half"]  # errors on the [0, 1] scale: a quarter of the [−1, 1] ones
    assert lower["sample_mse"] == pytest.approx((bias + post_var) / 4, rel=0.03)
    assert lower["mse"] == pytest.approx((bias + post_var / k) / 4, rel=0.03)
    assert lower["mean_fill_mse"] == pytest.approx((s**2 + tau**2) / 4, rel=0.15)
    assert lower["gaussian_fill_mse"] == pytest.approx(bias / 4, rel=0.05)  # the fitted Gaussian's conditional mean
    assert lower["mse"] < 0.5 * lower["mean_fill_mse"]  # the posterior mean: (1 + 1/K) σ² against s² + τ²
    assert out["random_pixels"]["mse"] < 0.6 * out["random_pixels"]["mean_fill_mse"]


def test_chains_start_from_the_chosen_fill(model, data, tmp_path):
    """With no sampler steps the completions are their starting points: the Gaussian fill, the mean fill, or noise."""
    ctx = make_ctx(model, data, tmp_path)
    for init, yardstick in (("gaussian", "gaussian_fill_mse"), ("mean", "mean_fill_mse")):
        ctx.options = {"inpainting": {"init": init, "steps": 0}}
        out = suite_inpainting(ctx)["inpainting"]
        assert out["init"] == init
        for name in MASKS:
            assert out[name]["mse"] == pytest.approx(out[name][yardstick], rel=1e-5)
            assert out[name]["beats_mean_fill"] is (out[name]["mse"] < out[name]["mean_fill_mse"])
    ctx.options = {"inpainting": {"init": "uniform", "steps": 0}}
    noise = suite_inpainting(ctx)["inpainting"]["lower_half"]
    assert noise["mse"] > 2 * noise["mean_fill_mse"]


def test_the_gaussian_fill_is_the_conditional_mean():
    """On a 3-pixel Gaussian with pixel 2 missing: μ_2 + Σ_2o Σ_oo⁻¹ (x_o − μ_o), observed pixels untouched."""
    mean = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.5, 0.3], [0.5, 1.0, 0.2], [0.3, 0.2, 1.0]], dtype=torch.float64)
    x = torch.tensor([[0.5, 0.4, -0.9], [-0.3, 0.2, 0.8]]).view(2, 1, 1, 3)
    mask = torch.tensor([True, True, False]).expand(2, 3).reshape(2, 1, 1, 3)
    filled = GaussianFill(mean, cov, ridge=0.0)(x, mask)
    o = x.view(2, 3)[:, :2].double() - mean[:2]
    expected = mean[2] + o @ torch.linalg.solve(cov[:2, :2], cov[:2, 2])
    torch.testing.assert_close(filled.view(2, 3)[:, 2].double(), expected.clamp(-1, 1), rtol=1e-5, atol=1e-6)
    assert torch.equal(filled[mask], x[mask])


def test_bad_options(model, data, tmp_path):
    ctx = make_ctx(model, data, tmp_path)
    for bad, match in (({"init": "noise"}, "init must be one of"), ({"stepz": 3}, "unknown inpainting option 'stepz'"),
                       ({"n_samples": 0}, "n_samples must be an integer >= 1")):
        ctx.options = {"inpainting": bad}
        with pytest.raises(ValueError, match=match):
            suite_inpainting(ctx)


def test_the_gaussian_fill_is_fitted_once_per_evaluation(model, data, tmp_path, monkeypatch):
    """Model and baseline of one evaluation share the fitted Gaussian (a D × D covariance of the training set),
    and so does the likelihood suite's yardstick (which fits only its ridge-choosing split on top)."""
    from jemkit.evaluation.context import EvalContext
    from jemkit.evaluation.gaussian import Gaussian
    from jemkit.evaluation.likelihood import suite_likelihood

    fits, fit = [], Gaussian.fit.__func__
    monkeypatch.setattr(Gaussian, "fit", classmethod(lambda cls, x, **kw: fits.append(len(x)) or fit(cls, x, **kw)))
    shared = {}
    for label in ("model", "baseline"):
        suite_inpainting(EvalContext(model, data, tmp_path, label, quick=True, progress=False, shared=shared))
    assert fits == [len(data.x_train)]
    for label in ("model", "baseline"):
        suite_likelihood(EvalContext(model, data, tmp_path, label, quick=True, progress=False, shared=shared))
    assert fits == [len(data.x_train), int(len(data.x_train) * 0.9)]
