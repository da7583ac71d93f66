"""Dataset registry: ``load_dataset(name, **options) -> ImageData`` in [−1, 1] NCHW."""
from __future__ import annotations

from ..utils import closest
from .base import BatchStream, DatasetNotFound, ImageData, labelled_subset
from .digits import load_digits
from .fashion_mnist import load_fashion_mnist
from .ood import ood_sets

DATASETS = {"digits": load_digits, "fashion-mnist": load_fashion_mnist}


def load_dataset(name: str, **options) -> ImageData:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}'{closest(name, DATASETS)}; available: {', '.join(DATASETS)}")
    return DATASETS[name](**options).validate()


__all__ = ["DATASETS", "DatasetNotFound", "ImageData", "BatchStream", "labelled_subset", "load_dataset", "ood_sets"]
