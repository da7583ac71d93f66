"""A user's dataset as image folders, listed by torchvision's ``ImageFolder``: ``DIR/train/<class>/*``
and ``DIR/test/<class>/*`` (files with torchvision's image extensions, at any depth inside a class
folder). Class names are the folder names, sorted (ImageFolder's order); the test split must have
the same classes. Every image is converted to the mode of the first one — grayscale (L) if that is
a one-band image, else RGB — and all must have one size. Everything is read into memory; nothing
is written. Pixels are scaled to [−1, 1]: x / 255 · 2 − 1, NCHW float32.
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension
from torchvision.transforms.functional import pil_to_tensor

from .base import ImageData, uint8_to_unit

GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # one-band images (LA: gray with alpha) read as L; the rest as RGB


def open_image(path: str | Path) -> Image.Image:
    """The decoded image at ``path``; one line naming the file when it cannot be decoded."""
    try:
        with Image.open(path) as img:
            img.load()
            return img
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:  # PIL's errors for broken files
        raise ValueError(f"{path}: unreadable image ({' '.join(str(err).split())})") from None


def read_images(paths: list[str], mode: str | None = None) -> Tensor:
    """Images at ``paths`` as uint8 (N, C, H, W) in ``mode`` (default: L or RGB after the first); one size for all."""
    first = open_image(paths[0])
    mode = mode or ("L" if first.mode in GRAY_MODES else "RGB")
    out = torch.empty(len(paths), 1 if mode == "L" else 3, first.height, first.width, dtype=torch.uint8)
    for i, path in enumerate(paths):
        img = first if i == 0 else open_image(path)
        if img.size != first.size:
            raise ValueError(f"{path}: image is {img.width}x{img.height} pixels but {paths[0]} is "
                             f"{first.width}x{first.height}; all images must have one size (W×H)")
        out[i] = pil_to_tensor(img.convert(mode))
    return out


def image_folder(root: Path) -> ImageFolder:
    """torchvision's listing of ``root/<class>/*``; one line naming the folder when it has no classes or images."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (expected {root}/<class>/<image files>)")
    try:
        folder = ImageFolder(str(root), loader=str, allow_empty=True)  # the loader returns the path; read_images decodes
    except FileNotFoundError:
        raise FileNotFoundError(f"{root}: no class folders (expected {root}/<class>/<image files>)") from None
    empty = sorted(set(folder.classes) - {folder.classes[t] for t in folder.targets})
    if empty:
        raise ValueError(f"{root}/{empty[0]}: no images (extensions {', '.join(IMG_EXTENSIONS)})")
    return folder


def load_imagefolder(spec: str, path: str | Path, **_) -> ImageData:
    """``path/train`` and ``path/test`` as a labelled dataset in [−1, 1] NCHW, classes from folder names."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder (an image-folder dataset is DIR/train/<class>/* and DIR/test/<class>/*)")
    train, test = image_folder(path / "train"), image_folder(path / "test")
    if test.classes != train.classes:
        raise ValueError(f"{path / 'test'}: classes {test.classes} differ from {path / 'train'}'s {train.classes}")
    x_train = read_images([p for p, _ in train.samples])
    x_test = read_images([p for p, _ in test.samples], "L" if x_train.shape[1] == 1 else "RGB")
    if x_test.shape[2:] != x_train.shape[2:]:
        raise ValueError(f"{test.samples[0][0]}: test images are {x_test.shape[3]}x{x_test.shape[2]} pixels but train images "
                         f"are {x_train.shape[3]}x{x_train.shape[2]}; all images must have one size (W×H)")
    return ImageData(
        name=spec, x_train=uint8_to_unit(x_train), y_train=torch.tensor(train.targets, dtype=torch.long),
        x_test=uint8_to_unit(x_test), y_test=torch.tensor(test.targets, dtype=torch.long),
        num_classes=len(train.classes), class_names=list(train.classes),
        preprocessing={"range": [-1.0, 1.0], "scaling": "pixel / 255 * 2 - 1", "layout": "NCHW",
                       "source": f"image folders {path.resolve()}/train, /test ({'L' if x_train.shape[1] == 1 else 'RGB'})"},
    )


def folder_ood_images(path: str | Path) -> Tensor:
    """Every image under ``path`` (flat, in class folders, at any depth), sorted by path, as uint8 (N, C, H, W)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder")
    paths = sorted(str(p) for p in path.rglob("*") if p.is_file() and has_file_allowed_extension(str(p), IMG_EXTENSIONS))
    if not paths:
        raise ValueError(f"{path}: no images (extensions {', '.join(IMG_EXTENSIONS)})")
    return read_images(paths)
