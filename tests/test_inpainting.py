import math

import pytest
import torch

import jemkit
from jemkit.evaluation.inpainting import (
    MASKS, ClampedEnergy, inpaint, lower_half_mask, masked_errors, random_pixel_mask, suite_inpainting,
)
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
            assert r[f"{kind}psnr"] == pytest.approx(10 * math.log10(1 / r[f"{kind}mse"]))
            assert 0 < r[f"{kind}mse"] < 1
    assert (tmp_path / "inpainting.png").is_file()
    assert all(p.grad is None for p in model.parameters())
    # the same seed reproduces every number; the baseline label prefixes the file
    again = suite_inpainting(make_ctx(model, data, tmp_path, label="baseline"))["inpainting"]
    assert again == out
    assert (tmp_path / "baseline_inpainting.png").is_file()
    other = suite_inpainting(make_ctx(model, data, tmp_path, seed=1))["inpainting"]
    assert other["random_pixels"]["mean_fill_mse"] != out["random_pixels"]["mean_fill_mse"]  # new mask
