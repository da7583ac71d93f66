"""Auxiliary outlier images for outlier exposure (``data.outliers=generated:KINDS``), made on the spot.

Outlier exposure (Hendrycks et al. 2019) and energy-bounded fine-tuning (Liu et al. 2020, §3.2) need
images that are neither the in-distribution data nor the OOD sets the model is tested on (or the test
measures memorization). With no dataset downloads, two sources that no OOD test set uses:

- ``patches``: random square crops of the two photographs that ship with scikit-learn (a temple and a
  flower, 427×640 RGB): side 8–256 px, random place, flips and 90° turns, grayscale (ITU-R BT.601 luma)
  when C = 1, resized with antialiasing. Textured, natural images.
- ``shapes``: procedural images (Baradad et al. 2021 pretrain on such noise): half random strokes (lines,
  arcs and cubic Bézier curves of random width and brightness on a flat dark background), half dead leaves
  (Lee, Mumford & Huang 2001: overlapping random ellipses, rectangles and polygons of random gray levels),
  each with a random blur. Simple, sparse, high-contrast images: the kind maximum-likelihood energies rank
  *above* their training data (Nalisnick et al. 2019; Serrà et al. 2020), which photo crops do not cover.
  No glyph, digit or letter is drawn.
- ``spectral``: random-phase noise with a power spectrum 1/f^α, α uniform in [0, 3] (Baradad et al.'s
  "spectrum" noise): from white noise (α = 0, the noise OOD sets' kind, so a model trained on it says
  nothing about those sets) through textures to smooth clouds, at a random mean and contrast.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

KINDS = ("patches", "shapes", "spectral")
N_OUTLIERS = 20000  # images per generated set, split evenly between the kinds named

LUMA = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)


def natural_patches(n: int, shape: tuple[int, int, int], seed: int = 0,
                    min_side: int = 8, max_side: int = 256) -> torch.Tensor:
    """``n`` random crops of scikit-learn's sample photos as uint8 (n, C, H, W), C ∈ {1, 3}."""
    c, h, w = shape
    if c not in (1, 3):
        raise ValueError(f"patches have 1 (grayscale) or 3 (RGB) channels, got {c}")
    from sklearn.datasets import load_sample_images
    from torchvision.transforms.v2 import functional as TF

    photos = [torch.from_numpy(np.array(im)).permute(2, 0, 1).float() for im in load_sample_images().images]
    if c == 1:
        photos = [(p * LUMA).sum(0, keepdim=True) for p in photos]
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, c, h, w, dtype=torch.uint8)
    for i in range(n):
        photo = photos[int(torch.randint(len(photos), (1,), generator=g))]
        side = int(torch.randint(min_side, min(max_side, *photo.shape[1:]) + 1, (1,), generator=g))
        top = int(torch.randint(photo.shape[1] - side + 1, (1,), generator=g))
        left = int(torch.randint(photo.shape[2] - side + 1, (1,), generator=g))
        patch = TF.resize(photo[:, top:top + side, left:left + side], [h, w], antialias=True)
        if torch.rand(1, generator=g) < 0.5:
            patch = patch.flip(2)
        patch = torch.rot90(patch, int(torch.randint(4, (1,), generator=g)), dims=(1, 2))
        out[i] = patch.round().clamp(0, 255).to(torch.uint8)
    return out


SUPERSAMPLE = 4  # shapes are drawn at 4× the side, then reduced with antialiasing


def _strokes(rng: np.random.Generator, draw, side: int) -> None:
    for _ in range(rng.integers(1, 5)):
        width = int(rng.integers(2, 14))
        fill = int(rng.integers(120, 256))
        kind = rng.integers(3)
        if kind == 0:  # a polyline of 2-4 points
            pts = [tuple(rng.uniform(0.1, 0.9, 2) * side) for _ in range(rng.integers(2, 5))]
            draw.line(pts, fill=fill, width=width, joint="curve")
        elif kind == 1:  # an arc of an ellipse
            x0, y0 = rng.uniform(0.05, 0.5, 2) * side
            x1, y1 = x0 + rng.uniform(0.2, 0.5) * side, y0 + rng.uniform(0.2, 0.5) * side
            start = float(rng.uniform(0, 360))
            draw.arc((x0, y0, x1, y1), start, start + float(rng.uniform(60, 330)), fill=fill, width=width)
        else:  # a cubic Bézier curve
            p = rng.uniform(0.05, 0.95, (4, 2)) * side
            t = np.linspace(0, 1, 40)[:, None]
            curve = (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t ** 2 * p[2] + t ** 3 * p[3]
            draw.line([tuple(q) for q in curve], fill=fill, width=width, joint="curve")


def _dead_leaves(rng: np.random.Generator, draw, side: int) -> None:
    for _ in range(rng.integers(2, 12)):
        fill = int(rng.integers(0, 256))
        r = rng.uniform(0.05, 0.4) * side
        cx, cy = rng.uniform(0, 1, 2) * side
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse((cx - r, cy - r * rng.uniform(0.3, 1), cx + r, cy + r * rng.uniform(0.3, 1)), fill=fill)
        elif kind == 1:
            draw.rectangle((cx - r, cy - r * rng.uniform(0.3, 1.5), cx + r, cy + r), fill=fill)
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 7)))
            draw.polygon([(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles], fill=fill)


def procedural_shapes(n: int, shape: tuple[int, int, int], seed: int = 0) -> Tensor:
    """``n`` procedural images as uint8 (n, C, H, W), gray (the same in every channel), H = W: even indices
    strokes, odd ones dead leaves."""
    from PIL import Image, ImageDraw, ImageFilter

    c, h, w = shape
    rng = np.random.default_rng(seed)
    canvas_side = SUPERSAMPLE * h
    out = np.empty((n, h, w), np.uint8)
    for i in range(n):
        background = int(rng.integers(0, 40)) if i % 2 == 0 else int(rng.integers(0, 256))
        canvas = Image.new("L", (canvas_side, canvas_side), background)
        (_strokes if i % 2 == 0 else _dead_leaves)(rng, ImageDraw.Draw(canvas), canvas_side)
        canvas = canvas.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 3)) * h / 28))
        out[i] = np.asarray(canvas.resize((w, h), Image.Resampling.LANCZOS))
    return torch.from_numpy(out).unsqueeze(1).expand(n, c, h, w).contiguous()


def spectral_noise(n: int, shape: tuple[int, int, int], seed: int = 0) -> Tensor:
    """``n`` images of noise with power spectrum ∝ 1/f^α (α ~ U(0, 3), per image) as uint8 (n, C, H, W): white
    Gaussian noise filtered in Fourier space, standardized, then given a random mean (64–192) and std (16–96)."""
    c, h, w = shape
    g = torch.Generator().manual_seed(seed)
    alpha = 3 * torch.rand(n, 1, 1, 1, generator=g)
    fy, fx = torch.fft.fftfreq(h).view(h, 1), torch.fft.rfftfreq(w).view(1, -1)
    f = (fy**2 + fx**2).sqrt().clamp(min=1.0 / max(h, w))  # the DC term is removed by the standardization below
    spectrum = torch.fft.rfft2(torch.randn(n, c, h, w, generator=g)) * f.pow(-alpha / 2)
    x = torch.fft.irfft2(spectrum, s=(h, w))
    x = (x - x.mean((1, 2, 3), keepdim=True)) / x.std((1, 2, 3), keepdim=True)
    mean, std = 64 + 128 * torch.rand(n, 1, 1, 1, generator=g), 16 + 80 * torch.rand(n, 1, 1, 1, generator=g)
    return (mean + std * x).round().clamp(0, 255).to(torch.uint8)


GENERATORS = {"patches": natural_patches, "shapes": procedural_shapes, "spectral": spectral_noise}


def parse_kinds(text: str) -> list[str]:
    """``"patches+shapes"`` → ["patches", "shapes"]; refuses unknown or repeated kinds."""
    kinds = [k.strip() for k in text.split("+")]
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown generated outlier kind '{k}'; choose from {', '.join(KINDS)} (joined by '+')")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"generated outlier kinds repeat in '{text}'")
    return kinds


def generated_outliers(kinds: str, shape: tuple[int, ...], n: int = N_OUTLIERS, seed: int = 0) -> Tensor:
    """``n`` outliers as uint8 (n, C, H, W), evenly from each kind of ``kinds`` (``parse_kinds``), interleaved
    in a seeded random order; the same images for the same arguments. Square images with 1 or 3 channels."""
    kinds_list = parse_kinds(kinds)
    if len(shape) != 3 or shape[0] not in (1, 3) or shape[1] != shape[2]:
        raise ValueError(f"generated outliers are square images with 1 or 3 channels, asked for {'x'.join(map(str, shape))}")
    sizes = [n // len(kinds_list) + (i < n % len(kinds_list)) for i in range(len(kinds_list))]
    parts = [GENERATORS[k](m, tuple(shape), seed=seed + i) for i, (k, m) in enumerate(zip(kinds_list, sizes))]
    x = torch.cat(parts)
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))]
