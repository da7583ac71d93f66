"""2-D toy distributions (as in FFJORD and NCSN's toy experiments), seeded, scaled to about [−1, 1].

The points are ``ImageData`` with x of shape (N, 2) — vectors, not images — and a label per point
(which mode, ring or moon it came from; score objectives ignore it). The train and test sets are
independent draws (seeds derived from ``split_seed``).

  8gaussians  eight N(c_k, 0.05²I) with centres c_k on the circle of radius 0.8, equal weights
  rings       four concentric circles, radii 0.225, 0.45, 0.675, 0.9, equal counts, N(0, 0.02²) noise
  moons       scikit-learn's two moons (noise 0.05), centred and scaled by 1/1.5 into [−1, 1] × [−0.5, 0.5]
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .base import ImageData

N_TRAIN, N_TEST = 10000, 2000
GAUSSIAN_RADIUS, GAUSSIAN_STD = 0.8, 0.05
RING_RADII, RING_NOISE = (0.225, 0.45, 0.675, 0.9), 0.02


def eight_gaussian_centres() -> Tensor:
    """The 8 centres c_k = 0.8·(cos 2πk/8, sin 2πk/8), (8, 2)."""
    angle = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return (GAUSSIAN_RADIUS * torch.stack([angle.cos(), angle.sin()], 1)).float()


def eight_gaussians(n: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(8, (n,), generator=g)
    return eight_gaussian_centres()[y] + GAUSSIAN_STD * torch.randn(n, 2, generator=g), y


def rings(n: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % len(RING_RADII)
    y = y[torch.randperm(n, generator=g)]
    angle = torch.rand(n, generator=g) * 2 * math.pi
    r = torch.tensor(RING_RADII)[y]
    x = torch.stack([angle.cos(), angle.sin()], 1) * r.unsqueeze(1)
    return x + RING_NOISE * torch.randn(n, 2, generator=g), y


def moons(n: int, seed: int) -> tuple[Tensor, Tensor]:
    from sklearn.datasets import make_moons

    x, y = make_moons(n, noise=0.05, random_state=seed)
    x = (x - np.array([0.5, 0.25])) / 1.5
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))


TOYS = {"8gaussians": (eight_gaussians, 8), "rings": (rings, len(RING_RADII)), "moons": (moons, 2)}


def load_toy(name: str, split_seed: int = 0, n_train: int = N_TRAIN, n_test: int = N_TEST, **_) -> ImageData:
    """``n_train`` / ``n_test`` points of toy ``name`` as float32 (N, 2), independent seeded draws."""
    sample, k = TOYS[name]
    x_train, y_train = sample(n_train, 2 * split_seed)
    x_test, y_test = sample(n_test, 2 * split_seed + 1)
    return ImageData(
        name=name, x_train=x_train.float(), y_train=y_train.long(), x_test=x_test.float(), y_test=y_test.long(),
        num_classes=k, class_names=[f"{name}-{i}" for i in range(k)],
        preprocessing={"range": "about [-1, 1]", "layout": "ND (2-D points)", "split": f"independent draws, seed {split_seed}"},
    )


def energy_distance(a: Tensor, b: Tensor) -> float:
    """Székely's energy distance 2E‖a − b‖ − E‖a − a'‖ − E‖b − b'‖ (≥ 0, zero iff equal laws), V-statistic."""
    a, b = a.double().flatten(1), b.double().flatten(1)
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


def mode_coverage(x: Tensor, radius: float = 2 * GAUSSIAN_STD) -> dict[str, float]:
    """8gaussians sample quality: share of points within ``radius`` (2 std) of their nearest centre,
    how many of the 8 modes got at least 1% of the points, and the largest mode's share."""
    d = torch.cdist(x.double(), eight_gaussian_centres().double())  # (N, 8)
    dist, nearest = d.min(1)
    share = torch.bincount(nearest, minlength=8).double() / len(x)
    return {"within_2std": float((dist <= radius).double().mean()), "modes_covered": int((share >= 0.01).sum()),
            "max_mode_share": float(share.max())}
