"""CelebA aligned faces (Liu et al. 2015), read by torchvision, as 32×32 images with one attribute as label.

CelebA has no single class label; jemkit's ``celeba`` dataset classifies the **Smiling** attribute
(2 classes, ≈ 48% positive: the most balanced of the 40), over the official train (162,770) /
test (19,962) partition. Images are center-cropped to 140×140 and resized to 32×32 (the NCSN
preprocessing, Song & Ermon 2019), so a CelebA model and the CIFAR-10 OOD set share one shape.
Decoding is one JPEG at a time (162,770 of them for the train split); as float32 the train split
takes ≈ 2 GB. A searched folder counts if it holds (or is) ``celeba/`` with ``img_align_celeba/`` and
the five list files, each passing torchvision's MD5 check (the images themselves have none).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torchvision import transforms
from torchvision.datasets import CelebA

from .base import ImageData, uint8_to_unit
from .locate import Source, locate

ATTRIBUTE = "Smiling"
CROP, SIZE = 140, 32


def _files(with_train: bool) -> list[tuple[str, str | None]]:
    lists = [(f"{CelebA.base_folder}/{name}", md5) for _, md5, name in CelebA.file_list if not name.endswith((".zip", ".7z"))]
    return lists + [(f"{CelebA.base_folder}/img_align_celeba", None)]


CELEBA_SOURCE = Source("celeba", "CelebA", _files, aliases=(), fetch=lambda dest: CelebA(str(dest), download=True),
                       howto="download img_align_celeba.zip (unpacked) and the five list files (list_attr_celeba.txt, "
                             "list_eval_partition.txt, identity_CelebA.txt, list_bbox_celeba.txt, "
                             "list_landmarks_align_celeba.txt) from mmlab.ie.cuhk.edu.hk/projects/CelebA.html into "
                             "FOLDER/celeba/, or run once with network access so torchvision can try its download.")


def celeba_images(tv_root: Path | str, split: str, indices: torch.Tensor | None = None,
                  attribute: str = ATTRIBUTE) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of ``split`` (all, or only ``indices``) as uint8 (N, 3, 32, 32) and the 0/1 ``attribute`` labels."""
    tf = transforms.Compose([transforms.CenterCrop(CROP), transforms.Resize(SIZE), transforms.PILToTensor()])
    ds = CelebA(str(tv_root), split=split, target_type="attr", transform=tf)
    names = [a for a in ds.attr_names if a]
    if attribute not in names:
        raise ValueError(f"CelebA has no attribute '{attribute}'; available: {', '.join(names)}")
    idx = torch.arange(len(ds)) if indices is None else indices
    x = torch.empty(len(idx), 3, SIZE, SIZE, dtype=torch.uint8)
    for k, i in enumerate(idx.tolist()):
        x[k] = ds[i][0]
    return x, ds.attr[idx, names.index(attribute)].long()


def celeba_split_size(tv_root: Path | str, split: str) -> int:
    return len(CelebA(str(tv_root), split=split, target_type=[]))


def load_celeba(root: str | None = None, download: bool = True, **_) -> ImageData:
    """Train / test as (N, 3, 32, 32) float32 in [−1, 1]; label = Smiling (0 = no, 1 = yes)."""
    tv_root = locate(CELEBA_SOURCE, root, download)
    (xtr, ytr), (xte, yte) = celeba_images(tv_root, "train"), celeba_images(tv_root, "test")
    return ImageData(
        name="celeba",
        x_train=uint8_to_unit(xtr), y_train=ytr, x_test=uint8_to_unit(xte), y_test=yte,
        num_classes=2,
        class_names=["not smiling", "smiling"],
        preprocessing={"range": [-1.0, 1.0], "scaling": "pixel / 255 * 2 - 1", "layout": "NCHW",
                       "resize": f"center crop {CROP}x{CROP}, resize to {SIZE}x{SIZE}", "label": f"attribute {ATTRIBUTE}"},
        root=root,
    )
