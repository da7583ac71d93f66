"""Noise-conditional score networks s(x, σ) ≈ ∇ₓ log p_σ(x) (NCSN, Song & Ermon 2019).

``forward(x, sigma)``: x of shape (B, D) (``ScoreMLP``) or (B, C, H, W) (``ScoreCNN``), σ of shape (B,);
the output is shaped like x. Two ways to use σ (``sigma_mode``):
  scale  s(x, σ) = f(x) / σ             NCSNv2's Technique 3 (Song & Ermon 2020): one unconditional net
  embed  s(x, σ) = f(x, log σ) / σ      f also sees log σ (Fourier features → MLP; added per layer/channel)
Both divide by σ, so f predicts −z (unit scale) at every level, as the σ²-weighted loss wants.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .small import make_activation

SIGMA_MODES = ("scale", "embed")


def _check_mode(sigma_mode: str) -> None:
    if sigma_mode not in SIGMA_MODES:
        raise ValueError(f"unknown sigma_mode '{sigma_mode}': choose one of {', '.join(SIGMA_MODES)}")


class SigmaEmbedding(nn.Module):
    """log σ → Fourier features [sin, cos](2π·k·log σ) for fixed frequencies k → 2-layer MLP, (B,) → (B, dim)."""

    def __init__(self, dim: int, activation: str, n_freq: int = 8):
        super().__init__()
        self.register_buffer("freq", torch.logspace(-1, 1, n_freq) * 2 * math.pi, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * n_freq, dim), make_activation(activation), nn.Linear(dim, dim))

    def forward(self, sigma: Tensor) -> Tensor:
        angles = sigma.log().unsqueeze(1) * self.freq  # (B, F)
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


def _sigma(sigma: Tensor | None, x: Tensor) -> Tensor:
    if sigma is None:
        raise ValueError("a noise-conditional score network needs sigma: call net(x, sigma) with sigma of shape (B,)")
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return sigma.expand(x.shape[0]) if sigma.dim() == 0 else sigma


class ScoreMLP(nn.Module):
    """For 2-D toys (any D): three hidden layers of ``width`` units; with ``embed`` each hidden layer
    gets the σ embedding added before its activation."""

    def __init__(self, in_channels: int = 2, width: int = 128, activation: str = "silu", sigma_mode: str = "embed"):
        super().__init__()
        _check_mode(sigma_mode)
        self.sigma_mode = sigma_mode
        self.layers = nn.ModuleList([nn.Linear(in_channels, width), nn.Linear(width, width), nn.Linear(width, width)])
        self.act = make_activation(activation)
        self.embed = SigmaEmbedding(width, activation) if sigma_mode == "embed" else None
        self.out = nn.Linear(width, in_channels)

    def forward(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        sigma = _sigma(sigma, x)
        e = self.embed(sigma) if self.embed is not None else 0.0  # (B, width)
        h = x
        for layer in self.layers:
            h = self.act(layer(h) + e)
        return self.out(h) / sigma.unsqueeze(1)


class _Block(nn.Module):
    """GroupNorm → act → 3×3 conv, twice, with a residual path; the σ embedding is added per channel."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, activation: str):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(8, c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(min(8, c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.act = make_activation(activation)
        self.emb = nn.Linear(emb_dim, c_out) if emb_dim else None
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, e: Tensor | None) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        if self.emb is not None:
            h = h + self.emb(e)[:, :, None, None]
        h = self.conv2(self.act(self.norm2(h)))
        return self.skip(x) + h


class ScoreCNN(nn.Module):
    """A small U-Net-style encoder–decoder for images with H and W divisible by 4 (28×28: 28 → 14 → 7):
    widths w, 2w, 4w, one residual block per level on the way down and up, skip connections by
    concatenation, nearest-neighbour upsampling."""

    def __init__(self, in_channels: int = 1, width: int = 32, activation: str = "silu", sigma_mode: str = "scale"):
        super().__init__()
        _check_mode(sigma_mode)
        w, emb = width, (4 * width if sigma_mode == "embed" else 0)
        self.embed = SigmaEmbedding(emb, activation) if emb else None
        self.stem = nn.Conv2d(in_channels, w, 3, padding=1)
        self.down1 = _Block(w, w, emb, activation)                                    # H
        self.pool1 = nn.Conv2d(w, 2 * w, 3, stride=2, padding=1)                       # H/2
        self.down2 = _Block(2 * w, 2 * w, emb, activation)
        self.pool2 = nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1)                   # H/4
        self.mid = _Block(4 * w, 4 * w, emb, activation)
        self.up2 = _Block(4 * w + 2 * w, 2 * w, emb, activation)                       # H/2, skip from down2
        self.up1 = _Block(2 * w + w, w, emb, activation)                               # H, skip from down1
        self.head = nn.Sequential(nn.GroupNorm(min(8, w), w), make_activation(activation), nn.Conv2d(w, in_channels, 3, padding=1))

    def forward(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        sigma = _sigma(sigma, x)
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"ScoreCNN needs H and W divisible by 4, got {tuple(x.shape[-2:])}")
        e = self.embed(sigma) if self.embed is not None else None
        h1 = self.down1(self.stem(x), e)                       # (B, w, H, W)
        h2 = self.down2(self.pool1(h1), e)                     # (B, 2w, H/2, W/2)
        h = self.mid(self.pool2(h2), e)                        # (B, 4w, H/4, W/4)
        h = self.up2(torch.cat([nn.functional.interpolate(h, scale_factor=2.0), h2], 1), e)
        h = self.up1(torch.cat([nn.functional.interpolate(h, scale_factor=2.0), h1], 1), e)
        return self.head(h) / sigma.view(-1, 1, 1, 1)
