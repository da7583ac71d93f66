"""Rendered glyphs: MNIST-like images of printed digits and letters, drawn with Pillow's built-in font.

A near-distribution OOD set for 28×28 grayscale models that needs no download: white strokes on black,
each glyph scaled to fit a 20×20 box and centred by its centre of mass in the 28×28 frame (LeCun et al.'s
MNIST normalization), with random character, size, stroke width, rotation and shear. It stands in for the
thin-stroke sets (MNIST, KMNIST, notMNIST, Omniglot) a 28×28 model is usually tested against, where
scikit-learn's upsampled 8×8 digits (blurry, thick) are a different kind of image.
"""
from __future__ import annotations

import string

import numpy as np
import torch
from torch import Tensor

CHARACTERS = string.digits + string.ascii_letters
RENDER_SIZE = 96  # glyphs are drawn at this size, then reduced (anti-aliasing as in MNIST's scanning)
BOX, FRAME = 20, 28


def _render(char: str, stroke: int, angle: float, shear: float, size: int):
    """One glyph as a PIL 'L' image cropped to its ink."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=size)
    canvas = Image.new("L", (2 * RENDER_SIZE, 2 * RENDER_SIZE), 0)
    ImageDraw.Draw(canvas).text((RENDER_SIZE // 2, RENDER_SIZE // 4), char, fill=255, font=font,
                                stroke_width=stroke, stroke_fill=255)
    canvas = canvas.transform(canvas.size, Image.Transform.AFFINE, (1, shear, -shear * RENDER_SIZE, 0, 1, 0),
                              resample=Image.Resampling.BILINEAR)
    canvas = canvas.rotate(angle, resample=Image.Resampling.BILINEAR)
    box = canvas.getbbox()
    return canvas.crop(box) if box else canvas


def _place(glyph) -> np.ndarray:
    """MNIST's normalization: fit into a BOX × BOX square (aspect kept), centre of mass at the FRAME's centre."""
    from PIL import Image

    w, h = glyph.size
    scale = BOX / max(w, h)
    small = np.asarray(glyph.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS),
                       dtype=np.float32).clip(0, 255)
    frame = np.zeros((FRAME, FRAME), np.float32)
    mass = small.sum()
    cy, cx = ((np.indices(small.shape) * small).reshape(2, -1).sum(1) / mass) if mass > 0 else np.array(small.shape) / 2
    top = int(round(FRAME / 2 - cy))
    left = int(round(FRAME / 2 - cx))
    top = min(max(top, 0), FRAME - small.shape[0])
    left = min(max(left, 0), FRAME - small.shape[1])
    frame[top : top + small.shape[0], left : left + small.shape[1]] = small
    return frame


def glyph_images(n: int, generator: torch.Generator | None = None, characters: str = CHARACTERS) -> Tensor:
    """``n`` rendered glyphs as float32 (n, 1, 28, 28) in [−1, 1] (black background −1): a random character
    of ``characters`` (default 0-9, A-Z, a-z), font size 48-80 px before reduction, stroke width 0-3 px, rotation ±15°, shear ±0.3."""
    u = torch.rand(n, 5, generator=generator, dtype=torch.float64).numpy()
    images = []
    for a, b, c, d, e in u:
        char = characters[int(a * len(characters))]
        glyph = _render(char, stroke=int(b * 4), angle=(c - 0.5) * 30, shear=(d - 0.5) * 0.6, size=48 + int(e * 33))
        images.append(_place(glyph))
    x = torch.from_numpy(np.stack(images)).unsqueeze(1)
    return x.div_(127.5).sub_(1.0)
