"""Chain initializations: where MCMC chains (fresh or re-initialized buffer slots) start."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Init = Callable[..., Tensor]


def uniform_init(
    n: int,
    shape: tuple[int, ...],
    *,
    y: Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """U(−1, 1) noise of shape (n, *shape), JEM's initialization for buffer and reinit. ``y`` is unused."""
    u = torch.rand((n, *shape), generator=generator, device=device, dtype=dtype)
    return u.mul_(2).sub_(1)


class ClassGaussianInit:
    """JEM++'s informative initialization (Yang & Ji 2021): x ~ N(μ_y, Σ_y + δI), clipped to [−1, 1],
    with one Gaussian per class fitted to the training data. Chains start near the data manifold,
    so 5–10 SGLD steps do the work of JEM's 20 from uniform noise. Without ``y`` the class is uniform.
    """

    def __init__(self, means: Tensor, scale_tril: Tensor, shape: tuple[int, ...]):
        self.means, self.scale_tril, self.shape = means, scale_tril, tuple(shape)  # (K, D), (K, D, D)

    @classmethod
    def fit(cls, x: Tensor, y: Tensor, num_classes: int, jitter: float = 1e-4) -> "ClassGaussianInit":
        """Per-class mean and Cholesky factor of the covariance of ``x`` (N, *shape), in float64 for the fit."""
        flat = x.reshape(len(x), -1).double()
        means, trils = [], []
        eye = torch.eye(flat.shape[1], dtype=torch.float64, device=x.device)
        for c in range(num_classes):
            xc = flat[y == c]
            if len(xc) < 2:
                raise ValueError(f"class {c} has {len(xc)} training examples; a Gaussian needs at least 2")
            mu = xc.mean(0)
            cov = (xc - mu).T @ (xc - mu) / len(xc)
            means.append(mu)
            trils.append(torch.linalg.cholesky(cov + jitter * eye))
        return cls(torch.stack(means).float(), torch.stack(trils).float(), tuple(x.shape[1:]))

    def __call__(self, n, shape, *, y=None, generator=None, device="cpu", dtype=torch.float32) -> Tensor:
        if tuple(shape) != self.shape:
            raise ValueError(f"this initialization was fitted to shape {self.shape}, asked for {tuple(shape)}")
        k, d = self.means.shape
        if y is None:
            y = torch.randint(0, k, (n,), generator=generator, device=device)
        z = torch.randn((n, d), generator=generator, device=device, dtype=dtype)
        means, trils = self.means.to(device, dtype), self.scale_tril.to(device, dtype)
        out = torch.empty((n, d), device=device, dtype=dtype)
        for c in y.unique().tolist():  # per class, never an (n, D, D) gather
            idx = (y == c).nonzero().squeeze(1)
            out[idx] = means[c] + z[idx] @ trils[c].T
        return out.clamp_(-1, 1).view(n, *shape)


class GaussianInit(ClassGaussianInit):
    """The label-free informative initialization: x ~ N(μ, Σ + δI), clipped to [−1, 1], one Gaussian fitted
    to all training images (JEM++'s init with one class). For models whose training may not use labels (an
    unconditional EBM) or only some of them (semi-supervised JEM); ``y`` is ignored."""

    @classmethod
    def fit(cls, x: Tensor, jitter: float = 1e-4) -> "GaussianInit":  # type: ignore[override]
        """Mean and Cholesky factor of the covariance of all of ``x`` (N, *shape)."""
        one = ClassGaussianInit.fit(x, torch.zeros(len(x), dtype=torch.long, device=x.device), 1, jitter)
        return cls(one.means, one.scale_tril, one.shape)

    def __call__(self, n, shape, *, y=None, generator=None, device="cpu", dtype=torch.float32) -> Tensor:
        return super().__call__(n, shape, generator=generator, device=device, dtype=dtype)


INITS: dict[str, Init] = {"uniform": uniform_init}
NAMES = ("uniform", "gaussian", "class_gaussian")  # buffer.init


def build_init(name: str, x: Tensor | None = None, y: Tensor | None = None, num_classes: int | None = None) -> Init:
    """An initialization by name: ``uniform``, ``gaussian`` (fitted to training images x) or ``class_gaussian``
    (fitted to training data x, y)."""
    if name == "class_gaussian":
        if x is None or y is None or num_classes is None:
            raise ValueError("class_gaussian initialization needs the training data to fit")
        return ClassGaussianInit.fit(x, y, num_classes)
    if name == "gaussian":
        if x is None:
            raise ValueError("gaussian initialization needs the training images to fit")
        return GaussianInit.fit(x)
    if name not in INITS:
        raise ValueError(f"unknown initialization '{name}'; choose one of {', '.join(NAMES)}")
    return INITS[name]
