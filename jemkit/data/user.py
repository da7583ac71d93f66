"""Bring your own data: dataset specs ``npz:FILE`` / ``imagefolder:DIR`` and user OOD sets ``NAME=SPEC``.

An OOD set is images only, no labels: an .npz file's array ``x`` (or ``x_test``), or every image
under a folder (flat files, class folders, any depth; sorted by path). It is scaled like the
datasets (x / 255 · 2 − 1) and must have the in-distribution images' shape C×H×W — or, when the
data were padded by ``data.shape``, their shape before padding, and is then padded the same way.
"""
from __future__ import annotations

from torch import Tensor

from .base import ImageData, uint8_to_unit
from .imagefolder import folder_ood_images, load_imagefolder
from .npz import load_npz, npz_ood_images
from .outliers import generated_outliers
from .padding import pad_images

USER_LOADERS = {"npz": load_npz, "imagefolder": load_imagefolder}  # spec prefix → loader(spec, path)
GENERATED_PREFIX = "generated:"  # data.outliers=generated:patches+shapes (outliers.py)
OOD_READERS = {"npz": npz_ood_images, "imagefolder": folder_ood_images}  # spec prefix → uint8 (N, C, H, W)


def split_spec(spec: str) -> tuple[str, str] | None:
    """``"npz:FILE"`` → ("npz", "FILE"); None when ``spec`` has no user-data prefix."""
    kind, sep, path = spec.partition(":")
    if not sep or kind not in USER_LOADERS:
        return None
    if not path:
        raise ValueError(f"'{spec}' names no {'file' if kind == 'npz' else 'folder'} after '{kind}:'")
    return kind, path


def load_user_dataset(spec: str, **options) -> ImageData:
    """The dataset of an ``npz:FILE`` or ``imagefolder:DIR`` spec."""
    kind, path = split_spec(spec)
    return USER_LOADERS[kind](spec, path, **options)


def parse_ood(text: str) -> tuple[str, str]:
    """``"NAME=npz:FILE"`` / ``"NAME=imagefolder:DIR"`` → (NAME, spec)."""
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or split_spec(spec) is None:
        raise ValueError(f"OOD set '{text}' must look like NAME=npz:FILE or NAME=imagefolder:DIR")
    return name.strip(), spec


def load_ood_set(spec: str, like: ImageData, name: str | None = None) -> Tensor:
    """The images of an OOD ``spec`` as float32 (N, C, H, W) in [−1, 1], checked to match ``like``'s shape.
    ``generated:KINDS`` (``outliers.generated_outliers``, e.g. ``generated:patches+shapes``) makes them at
    ``like``'s shape instead of reading them."""
    if spec.startswith(GENERATED_PREFIX):
        return uint8_to_unit(generated_outliers(spec[len(GENERATED_PREFIX):], like.shape))
    parts = split_spec(spec)
    if parts is None:
        raise ValueError(f"OOD set '{spec}' must be npz:FILE or imagefolder:DIR")
    name = name or spec
    if len(like.shape) != 3:
        raise ValueError(f"OOD set {name}: {like.name} is points of shape {like.shape}, not images")
    x = OOD_READERS[parts[0]](parts[1])
    shape = "x".join(map(str, x.shape[1:]))
    padded_from = like.preprocessing.get("shape", {}).get("from")  # data.shape padded the data from this C×H×W
    if shape == padded_from:
        return pad_images(uint8_to_unit(x), like.shape)
    if tuple(x.shape[1:]) != like.shape:
        raise ValueError(f"OOD set {name} has images {shape}, the model takes {'x'.join(map(str, like.shape))}")
    return uint8_to_unit(x)
