"""SVHN cropped digits (Netzer et al. 2011), the 32×32 ``.mat`` files, read by torchvision.

Train (73,257) and test (26,032) splits; ``extra`` is not used. Label "10" of the files is digit 0
(torchvision maps it). A searched folder counts if it, or its ``svhn/`` sub-folder, holds
``train_32x32.mat`` and ``test_32x32.mat`` passing torchvision's MD5 check. As float32 the two
splits take ≈ 1.2 GB.
"""
from __future__ import annotations

import torch
from torchvision.datasets import SVHN

from .base import ImageData, uint8_to_unit
from .locate import Source, locate


def _files(with_train: bool) -> list[tuple[str, str | None]]:
    splits = ("train", "test") if with_train else ("test",)
    return [(SVHN.split_list[s][1], SVHN.split_list[s][2]) for s in splits]


def _fetch(dest) -> None:
    for split in ("train", "test"):
        SVHN(str(dest), split=split, download=True)


SVHN_SOURCE = Source("svhn", "SVHN", _files, aliases=("svhn",), fetch=_fetch,
                     howto="download train_32x32.mat and test_32x32.mat from ufldl.stanford.edu/housenumbers into a "
                           "folder, or run once with network access so torchvision can download them.")


def svhn_images(tv_root, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One SVHN split as uint8 (N, 3, 32, 32) and int64 labels 0..9."""
    ds = SVHN(str(tv_root), split=split)
    return torch.from_numpy(ds.data).contiguous(), torch.from_numpy(ds.labels).long()


def load_svhn(root: str | None = None, download: bool = True, **_) -> ImageData:
    """Train / test as (N, 3, 32, 32) float32 in [−1, 1], classes "0".."9"."""
    tv_root = locate(SVHN_SOURCE, root, download)
    (xtr, ytr), (xte, yte) = svhn_images(tv_root, "train"), svhn_images(tv_root, "test")
    return ImageData(
        name="svhn",
        x_train=uint8_to_unit(xtr), y_train=ytr, x_test=uint8_to_unit(xte), y_test=yte,
        num_classes=10,
        class_names=[str(i) for i in range(10)],
        preprocessing={"range": [-1.0, 1.0], "scaling": "pixel / 255 * 2 - 1", "layout": "NCHW"},
        root=root,
    )
