"""Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016) in the form JEM uses it.

JEM (Grathwohl et al. 2020) trains WRN-28-10 *without* batch norm and with LeakyReLU(0.2);
``norm`` selects none | batch | layer | instance, ``dropout`` is applied inside each block.
"""
from __future__ import annotations

from torch import Tensor, nn


def make_norm(kind: str, channels: int) -> nn.Module:
    """A 2-D normalization layer by name ('none' gives identity)."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    raise ValueError(f"unknown norm '{kind}': choose none, batch, layer or instance")


class WideBasic(nn.Module):
    """Pre-activation block: norm → act → conv3x3 → dropout → norm → act → conv3x3, plus shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, dropout: float, slope: float):
        super().__init__()
        self.norm1 = make_norm(norm, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=True)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.norm2 = make_norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=stride, padding=1, bias=True)
        self.act = nn.LeakyReLU(slope)
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=True)
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.drop(self.conv1(self.act(self.norm1(x))))
        h = self.conv2(self.act(self.norm2(h)))
        return h + self.shortcut(x)


class WideResNet(nn.Module):
    """WRN-depth-widen: 3 stages of (depth−4)/6 blocks, widths 16k, 32k, 64k; logits head."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        depth: int = 28,
        widen: int = 10,
        norm: str = "none",
        dropout: float = 0.0,
        slope: float = 0.2,
    ):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n+4 (e.g. 16, 22, 28), got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=True)
        layers, c_in = [], widths[0]
        for stage, c_out in enumerate(widths[1:]):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                layers.append(WideBasic(c_in, c_out, stride, norm, dropout, slope))
                c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.norm = make_norm(norm, c_in)
        self.act = nn.LeakyReLU(slope)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.norm(self.blocks(self.conv1(x))))  # (B, 64k, H/4, W/4)
        return self.head(h.mean(dim=(2, 3)))  # global average pool → (B, K)
