"""Two near-OOD sets for a Fashion-MNIST model that jemkit does not ship, as a held-out check of an OOD recipe.

- ``rot90.npz``: 1,000 test images turned by 90° one way or the other (clothing on its side).
- ``dejavu.npz``: 1,000 letters in matplotlib's DejaVu fonts (serif, serif bold, serif italic, sans bold,
  mono), 48–80 px, rotated ±15°, then fitted and centred as MNIST is (``jemkit.data.glyphs``' framing) —
  other fonts than the ``glyphs`` set's.

    python examples/heldout_ood_fmnist.py --out DIR
    jemkit eval RUN --baseline BASE --suite ood --ood rot90=npz:DIR/rot90.npz --ood dejavu=npz:DIR/dejavu.npz --out EV
"""
from __future__ import annotations

import argparse
import os
import string
from pathlib import Path

import numpy as np
import torch

from jemkit.data import load_dataset
from jemkit.data.glyphs import _place

FONTS = ("DejaVuSerif-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSerif-Italic.ttf")


def rotated_clothing(n: int, seed: int = 7) -> np.ndarray:
    """``n`` Fashion-MNIST test images turned by ±90°, uint8 (n, 28, 28)."""
    x = load_dataset("fashion-mnist").x_test
    g = torch.Generator().manual_seed(seed)
    x = x[torch.randperm(len(x), generator=g)[:n]]
    turn = torch.randint(0, 2, (n,), generator=g)
    rot = torch.stack([torch.rot90(xi, 1 if k == 0 else 3, dims=(1, 2)) for xi, k in zip(x, turn)])
    return ((rot + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)[:, 0].numpy()


def dejavu_letters(n: int, seed: int = 3) -> np.ndarray:
    """``n`` letters in matplotlib's DejaVu fonts, MNIST-framed, uint8 (n, 28, 28)."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        font = ImageFont.truetype(os.fspath(font_dir / FONTS[i % len(FONTS)]), int(rng.integers(48, 81)))
        canvas = Image.new("L", (192, 192), 0)
        ImageDraw.Draw(canvas).text((48, 24), string.ascii_letters[rng.integers(52)], fill=255, font=font)
        canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR)
        out.append(_place(canvas.crop(canvas.getbbox())))
    return np.stack(out).round().clip(0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="directory for rot90.npz and dejavu.npz")
    p.add_argument("--n", type=int, default=1000, help="images per set (default 1000)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "rot90.npz", x=rotated_clothing(args.n))
    np.savez(out / "dejavu.npz", x=dejavu_letters(args.n))
    print(f"{out}/rot90.npz, {out}/dejavu.npz: {args.n} images each")


if __name__ == "__main__":
    main()
