"""scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes), embedded in the sklearn wheel."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits as _sk_load_digits
from sklearn.model_selection import train_test_split

from .base import ImageData


def digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as float32 (N, 1, 8, 8) in [−1, 1] (pixels 0..16 → x/8 − 1) and labels."""
    d = _sk_load_digits()
    x = torch.from_numpy(d.images.astype(np.float32)).div_(8.0).sub_(1.0).unsqueeze(1)
    return x, torch.from_numpy(d.target.astype(np.int64))


def load_digits(test_fraction: float = 0.2, split_seed: int = 0, **_) -> ImageData:
    """Stratified train/test split of the digits (default 1,437 / 360)."""
    x, y = digits_images()
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=test_fraction, random_state=split_seed, stratify=y.numpy()
    )
    idx_train, idx_test = torch.from_numpy(idx_train), torch.from_numpy(idx_test)
    return ImageData(
        name="digits",
        x_train=x[idx_train], y_train=y[idx_train], x_test=x[idx_test], y_test=y[idx_test],
        num_classes=10,
        class_names=[str(i) for i in range(10)],
        preprocessing={
            "range": [-1.0, 1.0],
            "scaling": "pixel / 8 - 1 (sklearn digits have 17 gray levels 0..16)",
            "layout": "NCHW",
            "split": f"stratified, test_fraction={test_fraction}, seed={split_seed}",
        },
    )
