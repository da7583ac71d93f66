"""Dataset registry: ``load_dataset(name, **options) -> ImageData`` in [−1, 1] NCHW."""
from __future__ import annotations

from functools import partial

from ..utils import closest
from .base import BatchStream, DatasetNotFound, ImageData, labelled_subset
from .celeba import load_celeba
from .cifar import load_cifar10, load_cifar100
from .digits import load_digits
from .fashion_mnist import load_fashion_mnist
from .mnist import load_mnist
from .ood import ood_sets
from .svhn import load_svhn
from .toys import TOYS, load_toy

DATASETS = {"digits": load_digits, "fashion-mnist": load_fashion_mnist, "mnist": load_mnist, "cifar10": load_cifar10,
            "cifar100": load_cifar100, "svhn": load_svhn, "celeba": load_celeba}
DATASETS.update({name: partial(load_toy, name) for name in TOYS})  # 2-D points, x of shape (N, 2)


def load_dataset(name: str, **options) -> ImageData:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}'{closest(name, DATASETS)}; available: {', '.join(DATASETS)}")
    return DATASETS[name](**options).validate()


__all__ = ["DATASETS", "DatasetNotFound", "ImageData", "BatchStream", "labelled_subset", "load_dataset", "ood_sets"]
