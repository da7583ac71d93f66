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


def dataset_of(record: dict) -> ImageData:
    """The dataset (and test split) a checkpoint was trained on, from its record's config."""
    d = record["config"]["data"]
    return load_dataset(d["name"], root=d.get("root"), download=d.get("download", True),
                        test_fraction=d.get("test_fraction", 0.2), split_seed=d.get("split_seed", 0))


__all__ = ["DATASETS", "DatasetNotFound", "ImageData", "BatchStream", "dataset_of", "labelled_subset", "load_dataset", "ood_sets"]
