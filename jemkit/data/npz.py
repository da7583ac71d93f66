"""A user's dataset in one NumPy ``.npz`` file, read by ``np.load(allow_pickle=False)``.

Arrays: ``x_train``, ``y_train``, ``x_test``, ``y_test``; images uint8, (N, H, W) or (N, H, W, C)
with C ∈ {1, 3}; labels integers, (N,) or (N, 1) (Keras' layout); optional ``class_names``
(strings, one per class). Without ``class_names`` the number of classes is max label + 1.
Pixels are scaled to jemkit's [−1, 1]: x / 255 · 2 − 1, NCHW float32. OOD sets (``load_ood_set``)
hold one array of images, ``x`` or ``x_test``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .base import ImageData, uint8_to_unit

SPLITS = ("x_train", "y_train", "x_test", "y_test")


def open_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file (no pickled objects); one line naming the file when it cannot be read."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such .npz file")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as err:  # not a zip, a pickled (object) array, a truncated file
        raise ValueError(f"{path}: not a readable .npz file of plain arrays ({' '.join(str(err).split())})") from None


def npz_images(a: np.ndarray, where: str) -> Tensor:
    """uint8 images (N, H, W) or (N, H, W, C), C ∈ {1, 3} → uint8 tensor (N, C, H, W)."""
    if a.dtype != np.uint8:
        raise ValueError(f"{where} must hold uint8 images (pixels 0..255), got dtype {a.dtype}")
    if a.ndim not in (3, 4):
        raise ValueError(f"{where} must be images (N, H, W) or (N, H, W, C), got shape {a.shape}")
    if a.ndim == 4 and a.shape[3] not in (1, 3):
        raise ValueError(f"{where} has {a.shape[3]} channels in its last axis (shape {a.shape}); "
                         "images must be channels-last (N, H, W, C) with C = 1 or 3")
    if len(a) == 0:
        raise ValueError(f"{where} holds no images")
    x = torch.from_numpy(np.ascontiguousarray(a))
    return (x.unsqueeze(1) if a.ndim == 3 else x.permute(0, 3, 1, 2)).contiguous()


def npz_labels(a: np.ndarray, n: int, where: str) -> Tensor:
    """Integer labels (N,) or (N, 1) → int64 (N,)."""
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{where} must hold integer labels, got dtype {a.dtype}")
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.shape != (n,):
        raise ValueError(f"{where} must hold one label per image, shape ({n},), got {a.shape}")
    return torch.from_numpy(a.astype(np.int64))


def _classes(arrays: dict, y_train: Tensor, y_test: Tensor, path: Path) -> list[str]:
    """Class names from ``class_names``, else "0".."K−1" with K = max label + 1; labels must lie in [0, K)."""
    names = arrays.get("class_names")
    if names is not None and (names.ndim != 1 or names.dtype.kind not in "US"):
        raise ValueError(f"{path}: class_names must be a 1-D array of strings, got dtype {names.dtype}, shape {names.shape}")
    k = len(names) if names is not None else int(max(y_train.max(), y_test.max())) + 1
    for key, y in (("y_train", y_train), ("y_test", y_test)):
        bad = (y < 0) | (y >= k)
        if bad.any():
            given = f"{k} class_names" if names is not None else "labels counted from 0"
            raise ValueError(f"{path}: {key} has labels out of range [0, {k - 1}] ({given}), e.g. {y[bad][0].item()}")
    return [str(s) for s in names] if names is not None else [str(i) for i in range(k)]


def load_npz(spec: str, path: str | Path, **_) -> ImageData:
    """The dataset of ``path`` (arrays x_train, y_train, x_test, y_test[, class_names]) in [−1, 1] NCHW."""
    path = Path(path).expanduser()
    arrays = open_npz(path)
    missing = [k for k in SPLITS if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing array(s) {', '.join(missing)} (found: {', '.join(arrays) or 'none'}); "
                         f"a dataset .npz holds {', '.join(SPLITS)} and optionally class_names")
    x_train, x_test = (npz_images(arrays[k], f"{path}: {k}") for k in ("x_train", "x_test"))
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"{path}: x_train images are {'x'.join(map(str, x_train.shape[1:]))} but x_test images are "
                         f"{'x'.join(map(str, x_test.shape[1:]))} (C×H×W); both splits must have one shape")
    y_train = npz_labels(arrays["y_train"], len(x_train), f"{path}: y_train")
    y_test = npz_labels(arrays["y_test"], len(x_test), f"{path}: y_test")
    names = _classes(arrays, y_train, y_test, path)
    return ImageData(
        name=spec, x_train=uint8_to_unit(x_train), y_train=y_train, x_test=uint8_to_unit(x_test), y_test=y_test,
        num_classes=len(names), class_names=names,
        preprocessing={"range": [-1.0, 1.0], "scaling": "pixel / 255 * 2 - 1", "layout": "NCHW",
                       "source": f"npz file {path.resolve()}"},
    )


def npz_ood_images(path: str | Path) -> Tensor:
    """The uint8 images (N, C, H, W) of an OOD .npz file: its array ``x``, else ``x_test``."""
    path = Path(path).expanduser()
    arrays = open_npz(path)
    key = next((k for k in ("x", "x_test") if k in arrays), None)
    if key is None:
        raise ValueError(f"{path}: an OOD .npz file holds its images as array 'x' (or 'x_test'); "
                         f"found: {', '.join(arrays) or 'none'}")
    return npz_images(arrays[key], f"{path}: {key}")
