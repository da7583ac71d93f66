"""Small backbones for CPU-scale data: a CNN for 8×8 digits and 28×28 Fashion-MNIST."""
from __future__ import annotations

from torch import Tensor, nn

from .wideresnet import make_norm

ACTIVATIONS = {
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "silu": nn.SiLU,
    "relu": nn.ReLU,
}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}': choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class SmallCNN(nn.Module):
    """Three stages of two 3×3 convs (widths w, 2w, 4w), 2× average-pool between stages, then
    the last feature map average-pooled to ``head_grid``×``head_grid``, flattened, and a linear head.
    Any input size ≥ 4×4 works: 8×8 → 4×4 → 2×2, 28×28 → 14×14 → 7×7.

    ``head_grid=1`` is global average pooling; ``head_grid=7`` on 28×28 inputs keeps the position of
    each feature (the flattened 7×7 map), which clothing silhouettes need (README, Fashion-MNIST section).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        width: int = 32,
        norm: str = "none",
        dropout: float = 0.0,
        activation: str = "leaky_relu",
        head_grid: int = 1,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for stage, c_out in enumerate([width, 2 * width, 4 * width]):
            if stage > 0:
                layers.append(nn.AvgPool2d(2))
            for _ in range(2):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), make_norm(norm, c_out), make_activation(activation)]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        if head_grid < 1:
            raise ValueError(f"head_grid must be ≥ 1, got {head_grid}")
        self.head_grid = head_grid
        self.pool = nn.AdaptiveAvgPool2d(head_grid)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(c_in * head_grid * head_grid, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x)
        if h.shape[-2:] != (self.head_grid, self.head_grid):  # 28×28 inputs with head_grid=7: already 7×7, and
            h = self.pool(h)  # skip the identity adaptive pool: its backward is not free (docs/bench.md)
        h = h.flatten(1)  # (B, 4w·g²)
        return self.head(self.drop(h))
