"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the python-pickle batches, read by torchvision.

A searched folder counts if it holds ``cifar-10-batches-py/`` (``cifar-100-python/``) or is that
folder; every file must pass torchvision's MD5 check. Searched: ``data.root``, then
/usr/share/datasets/cifar10 (cifar100), then the download cache ($JEMKIT_CACHE/cifar10), where
torchvision's download goes. The sets are held in memory as float32: 60,000 × 3 × 32 × 32 × 4 bytes
≈ 740 MB per dataset (pixels stay uint8 until the conversion).
"""
from __future__ import annotations

import torch
from torchvision.datasets import CIFAR10, CIFAR100

from .base import ImageData, uint8_to_unit
from .locate import Source, locate


def _files(cls) -> callable:
    def files(with_train: bool) -> list[tuple[str, str | None]]:
        listed = (cls.train_list if with_train else []) + cls.test_list + [[cls.meta["filename"], cls.meta["md5"]]]
        return [(f"{cls.base_folder}/{name}", md5) for name, md5 in listed]
    return files


def _source(cls, key: str, title: str, archive: str) -> Source:
    return Source(key, title, _files(cls), aliases=(), fetch=lambda dest: cls(str(dest), train=True, download=True),
                  howto=f"download {archive} from www.cs.toronto.edu/~kriz/cifar.html and unpack it into a folder "
                        "(it creates the sub-folder above), or run once with network access so torchvision can download it.")


CIFAR10_SOURCE = _source(CIFAR10, "cifar10", "CIFAR-10", "cifar-10-python.tar.gz")
CIFAR100_SOURCE = _source(CIFAR100, "cifar100", "CIFAR-100", "cifar-100-python.tar.gz")


def cifar_images(ds) -> tuple[torch.Tensor, torch.Tensor]:
    """A torchvision CIFAR split as uint8 (N, 3, 32, 32) and int64 labels."""
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # stored (N, H, W, C)
    return x, torch.as_tensor(ds.targets, dtype=torch.long)


def _load(cls, source: Source, name: str, root: str | None, download: bool) -> ImageData:
    tv_root = str(locate(source, root, download))
    train, test = cls(tv_root, train=True), cls(tv_root, train=False)
    (xtr, ytr), (xte, yte) = cifar_images(train), cifar_images(test)
    return ImageData(
        name=name,
        x_train=uint8_to_unit(xtr), y_train=ytr, x_test=uint8_to_unit(xte), y_test=yte,
        num_classes=len(train.classes),
        class_names=list(train.classes),
        preprocessing={"range": [-1.0, 1.0], "scaling": "pixel / 255 * 2 - 1", "layout": "NCHW"},
        root=root,
    )


def load_cifar10(root: str | None = None, download: bool = True, **_) -> ImageData:
    """The standard 50,000 / 10,000 split as (N, 3, 32, 32) float32 in [−1, 1], 10 classes."""
    return _load(CIFAR10, CIFAR10_SOURCE, "cifar10", root, download)


def load_cifar100(root: str | None = None, download: bool = True, **_) -> ImageData:
    """The standard 50,000 / 10,000 split, 100 fine classes."""
    return _load(CIFAR100, CIFAR100_SOURCE, "cifar100", root, download)
