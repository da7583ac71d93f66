"""An auxiliary outlier set for energy-bounded OOD fine-tuning, from a source no OOD test set uses.

Outlier exposure (Hendrycks et al. 2019) and energy fine-tuning (Liu et al. 2020, §3.2) need images
that are *not* the in-distribution data and are *not* the OOD sets the model is then tested on (or the
test measures memorization). On a machine with no dataset downloads, the two photographs that ship with
scikit-learn (``load_sample_images``: a Chinese temple and a flower, 427×640 RGB) are such a source:
this script cuts N random square crops from them (side 8–256 px, random place, random flips and 90°
turns), converts to grayscale when C = 1 (ITU-R BT.601 luma) and resizes them, antialiased, to H×W.
(The same crops as ``data.outliers=generated:patches``, which makes them at training time:
``jemkit/data/outliers.py``.) The result is an ``.npz`` with one uint8 array ``x`` (N, H, W) or (N, H, W, C), the format of
``data.outliers=npz:FILE`` and ``--ood NAME=npz:FILE``.

    python examples/natural_patches.py --out outliers.npz --n 20000 --shape 1x28x28
"""
from __future__ import annotations

import argparse

import numpy as np

from jemkit.data.outliers import natural_patches


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--n", type=int, default=20000, help="number of patches (default 20000)")
    p.add_argument("--shape", default="1x28x28", help="CxHxW of the patches (default 1x28x28)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    c, h, w = (int(v) for v in args.shape.lower().split("x"))
    if h != w:
        raise SystemExit(f"--shape: square patches only, got {args.shape}")
    x = natural_patches(args.n, (c, h, w), args.seed)
    x = x[:, 0] if c == 1 else x.permute(0, 2, 3, 1)
    np.savez_compressed(args.out, x=x.numpy())
    print(f"{args.out}: {args.n} patches {args.shape} from scikit-learn's sample photos")


if __name__ == "__main__":
    main()
