"""One Gaussian N(μ, Σ + ridge·I) of the training images: the linear yardstick two evaluation suites measure an
energy model against (the conditional-mean fill of ``inpainting``, the reference density of ``likelihood``), and
the base density of an exponentially tilted model (``train.objective=tilt``: p(x) ∝ N(x) e^{−E(x)})."""
from __future__ import annotations

import math

import torch
from torch import Tensor

RIDGE_DECADES = tuple(k / 2 for k in range(11))  # the ridge grid: floor × 10^0 … 10^5 in half decades


def quantization_variance(x: Tensor) -> float:
    """w² / 12 for the smallest step w between distinct pixel values of ``x``: the variance of uniform
    dequantization noise over one quantization bin (8-bit images on [−1, 1]: w = 2/255, 5.1e-6)."""
    levels = torch.unique(x.detach().double().cpu())
    if len(levels) < 2:
        raise ValueError("the images have a single pixel value: no quantization step to read")
    return (levels.diff().min().item()) ** 2 / 12


def ridges(x: Tensor) -> tuple[float, ...]:
    """The ridge grid for images ``x``: from their ``quantization_variance`` up, so the fitted density is
    one of the dequantized images and cannot put unbounded density on a pixel that never changes."""
    floor = quantization_variance(x)
    return tuple(floor * 10.0**k for k in RIDGE_DECADES)


class Gaussian:
    """N(μ, Σ) on flattened images, in float64 on the CPU."""

    def __init__(self, mean: Tensor, cov: Tensor):
        self.mean, self.cov = mean.double().cpu(), cov.double().cpu()  # (D,), (D, D)

    @classmethod
    def fit(cls, x: Tensor, **kwargs) -> "Gaussian":
        """Maximum-likelihood mean and covariance of the images ``x`` (N, C, H, W)."""
        flat = x.reshape(len(x), -1).double().cpu()
        mu = flat.mean(0)
        return cls(mu, (flat - mu).T @ (flat - mu) / len(flat), **kwargs)

    def log_prob(self, x: Tensor, ridge: float) -> Tensor:
        """log N(x; μ, Σ + ridge·I) per image, (N,) float64 nats: −½ [‖L⁻¹(x − μ)‖² + log det 2π(Σ + ridge·I)]."""
        flat = x.reshape(len(x), -1).double().cpu() - self.mean
        d = flat.shape[1]
        chol = torch.linalg.cholesky(self.cov + ridge * torch.eye(d, dtype=torch.float64))
        z = torch.linalg.solve_triangular(chol, flat.T, upper=False)  # (D, N)
        log_det = 2 * chol.diagonal().log().sum()
        return -0.5 * (z.pow(2).sum(0) + log_det + d * math.log(2 * math.pi))

    @staticmethod
    def select_ridge(x_train: Tensor, held_out: float = 0.1, grid: tuple[float, ...] | None = None) -> float:
        """The ridge of ``grid`` (default ``ridges(x_train)``) whose Gaussian, fitted to the first
        (1 − ``held_out``) of ``x_train``, gives the rest the highest mean log-likelihood (a validation
        choice: the test set is never seen)."""
        n_fit = int(len(x_train) * (1 - held_out))
        if n_fit < 2 or n_fit == len(x_train):
            raise ValueError(f"select_ridge needs images on both sides of the split, got {len(x_train)} with held_out={held_out}")
        grid = grid or ridges(x_train)
        g = Gaussian.fit(x_train[:n_fit])
        scores = [g.log_prob(x_train[n_fit:], r).mean().item() for r in grid]
        return grid[max(range(len(grid)), key=scores.__getitem__)]


class RidgedGaussian:
    """N(μ, Σ + ridge·I) with its Cholesky factor L on a device: draws x = μ + L z, z ~ N(0, I), and the
    whitening chart u ↦ μ + L u that AIS runs in. ``fit`` makes the likelihood suite's yardstick: the Gaussian
    of all of ``x_train`` with the ridge ``Gaussian.select_ridge`` chooses (labels never used)."""

    def __init__(self, gaussian: Gaussian, ridge: float, device: torch.device | str = "cpu"):
        self.gaussian, self.ridge = gaussian, float(ridge)
        d = len(gaussian.mean)
        tril = torch.linalg.cholesky(gaussian.cov + self.ridge * torch.eye(d, dtype=torch.float64))
        self.log_det_tril = tril.diagonal().log().sum().item()  # log|det L| = ½ log det(Σ + ridge·I)
        self.mean, self.scale_tril = gaussian.mean.float().to(device), tril.float().to(device)

    @classmethod
    def fit(cls, x_train: Tensor, device: torch.device | str | None = None) -> "RidgedGaussian":
        """The Gaussian of ``x_train`` (N, *shape) with its validation-chosen ridge, on ``device`` (default x_train's)."""
        return cls(Gaussian.fit(x_train), Gaussian.select_ridge(x_train), x_train.device if device is None else device)

    @property
    def dim(self) -> int:
        return len(self.mean)

    def to_data(self, u: Tensor) -> Tensor:
        """x = μ + L u for flat u (n, D) in the whitened chart."""
        return self.mean.to(u.dtype) + u @ self.scale_tril.to(u.dtype).T

    def sample(self, n: int, shape: tuple[int, ...], *, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
        """``n`` draws of shape (n, *shape), on this Gaussian's device, not clipped (the base lives on R^D); computed
        in ``dtype`` even inside a bf16 autocast region (a training step's), so the draws are the base's own."""
        z = torch.randn((n, self.dim), generator=generator, device=self.mean.device, dtype=dtype)
        with torch.autocast(self.mean.device.type, enabled=False):
            return self.to_data(z).view(n, *shape)

    def log_prob(self, x: Tensor) -> Tensor:
        """log N(x; μ, Σ + ridge·I) per image, (N,) float64 nats, on the CPU (the likelihood suite's precision)."""
        return self.gaussian.log_prob(x, self.ridge)

    def log_density(self, x: Tensor) -> Tensor:
        """log N(x; μ, Σ + ridge·I) per image (N,) in x's dtype and device, differentiable in x (scores, gradients)."""
        flat = x.flatten(1)
        z = torch.linalg.solve_triangular(self.scale_tril.to(flat.dtype), (flat - self.mean.to(flat.dtype)).T, upper=False)
        return -0.5 * z.pow(2).sum(0) - self.log_det_tril - 0.5 * self.dim * math.log(2 * math.pi)
