"""MNIST (LeCun et al. 1998) from its original IDX files, read by torchvision.

Same search as Fashion-MNIST: a user-given root (the four IDX files, ``.gz`` or not, flat or in
torchvision's ``MNIST/raw/``), then /usr/share/datasets/mnist, then torchvision's download.
"""
from __future__ import annotations

from pathlib import Path

from torchvision.datasets import MNIST

from .base import ImageData, uint8_to_unit
from .fashion_mnist import idx_root

SYSTEM_ROOT = Path("/usr/share/datasets/mnist")


def load_mnist(root: str | None = None, download: bool = True, **_) -> ImageData:
    """The standard 60,000 / 10,000 split as (N, 1, 28, 28) float32 in [−1, 1] (x/255·2 − 1)."""
    tv_root = idx_root("MNIST", MNIST, "mnist", root, SYSTEM_ROOT, download,
                       "download the four files from the MNIST page (yann.lecun.com/exdb/mnist, or a mirror) "
                       "into a folder and pass it with `--set data.root=FOLDER`, or run once with network "
                       "access so torchvision can download them.")
    train, test = MNIST(str(tv_root), train=True), MNIST(str(tv_root), train=False)
    return ImageData(
        name="mnist",
        x_train=uint8_to_unit(train.data).unsqueeze(1), y_train=train.targets.long(),
        x_test=uint8_to_unit(test.data).unsqueeze(1), y_test=test.targets.long(),
        num_classes=10,
        class_names=[str(i) for i in range(10)],
        preprocessing={"range": [-1.0, 1.0], "scaling": "pixel / 255 * 2 - 1", "layout": "NCHW"},
        root=root,
    )
