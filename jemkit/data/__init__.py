"""Dataset registry: ``load_dataset(name, **options) -> ImageData`` in [−1, 1] NCHW.

``name`` is a built-in dataset or a user's ``npz:FILE`` / ``imagefolder:DIR`` (``user.py``);
``shape="CxHxW"`` pads the images to that shape afterwards (``padding.py``, config ``data.shape``).
"""
from __future__ import annotations

from dataclasses import fields
from functools import partial

from ..config import DataConfig, config_from_dict
from ..utils import closest
from .base import BatchStream, DatasetNotFound, ImageData, labelled_subset
from .celeba import load_celeba
from .cifar import load_cifar10, load_cifar100
from .digits import load_digits
from .fashion_mnist import load_fashion_mnist
from .mnist import load_mnist
from .negatives import negative_augment, parse_negatives
from .ood import ood_sets
from .padding import pad_to_shape
from .svhn import load_svhn
from .toys import TOYS, load_toy
from .user import USER_LOADERS, load_ood_set, load_user_dataset, parse_ood, split_spec

DATASETS = {"digits": load_digits, "fashion-mnist": load_fashion_mnist, "mnist": load_mnist, "cifar10": load_cifar10,
            "cifar100": load_cifar100, "svhn": load_svhn, "celeba": load_celeba}
DATASETS.update({name: partial(load_toy, name) for name in TOYS})  # 2-D points, x of shape (N, 2)


def load_dataset(name: str, shape: str = "", **options) -> ImageData:
    """A built-in dataset or a user's ``npz:FILE`` / ``imagefolder:DIR``, padded to ``shape`` ("CxHxW") when given."""
    if split_spec(name) is not None:
        data = load_user_dataset(name, **options)
    elif name in DATASETS:
        data = DATASETS[name](**options)
    else:
        raise ValueError(f"unknown dataset '{name}'{closest(name, DATASETS)}; available: {', '.join(DATASETS)}, "
                         f"or your own as {' or '.join(f'{k}:PATH' for k in USER_LOADERS)}")
    return (pad_to_shape(data, shape) if shape else data).validate()


def dataset_from_config(d: DataConfig) -> ImageData:
    """The dataset (both splits) a ``data:`` config section describes."""
    return load_dataset(d.name, shape=d.shape, root=d.root, download=d.download, test_fraction=d.test_fraction,
                        split_seed=d.split_seed)


def dataset_of(record: dict) -> ImageData:
    """The dataset (and test split) a checkpoint was trained on, from its record's config (keys it lacks: defaults)."""
    known = {f.name for f in fields(DataConfig)}
    d = {k: v for k, v in record["config"]["data"].items() if k in known}
    return dataset_from_config(config_from_dict({"data": d}).data)


__all__ = ["DATASETS", "DatasetNotFound", "ImageData", "BatchStream", "dataset_from_config", "dataset_of", "labelled_subset",
           "load_dataset", "load_ood_set", "ood_sets", "pad_to_shape", "parse_ood"]
