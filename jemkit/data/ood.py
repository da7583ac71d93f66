"""Out-of-distribution sets for an in-distribution test set (DESIGN.md §4), all in [−1, 1].

For an (N, C, H, W) test set: uniform noise, Gaussian noise (clipped), constant images,
vertically flipped test images, and "Interp" (JEM: the mean of two random test images).
For 28×28 grayscale data add scikit-learn's digits, upsampled to 28×28 ("digits").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import ImageData


def ood_sets(data: ImageData, n: int | None = None, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Name → (n, C, H, W) tensor on the test set's device. ``n`` defaults to the test-set size."""
    x = data.x_test
    n = min(n or len(x), len(x))
    shape, dev = (n, *x.shape[1:]), x.device

    def rand(*s):
        return torch.rand(s, generator=generator).to(dev)

    def randn(*s):
        return torch.randn(s, generator=generator).to(dev)

    def pick(k):
        return x[torch.randperm(len(x), generator=generator)[:k].to(dev)]

    sets = {
        "uniform": rand(*shape) * 2 - 1,
        "gaussian": randn(*shape).clamp_(-1, 1),
        "constant": (rand(n, 1, 1, 1) * 2 - 1).expand(shape).contiguous(),
        "flip": pick(n).flip(2),
        "interp": 0.5 * (pick(n) + pick(n)),
    }
    if x.shape[1:] == (1, 28, 28) and data.name != "digits":
        from .digits import digits_images

        d, _ = digits_images()
        d = d[torch.randperm(len(d), generator=generator)[:n]]
        sets["digits"] = F.interpolate(F.pad(d, (1, 1, 1, 1), value=-1.0), size=(28, 28), mode="bilinear", align_corners=False).to(dev)
    return sets
