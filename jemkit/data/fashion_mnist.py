"""Fashion-MNIST (Xiao et al. 2017) from its original IDX files, read by torchvision.

Search order: a user-given root, then /usr/share/datasets/fashion-mnist (Debian's
``dataset-fashion-mnist``), then torchvision's download (for users with a network).
A directory counts if it holds the four IDX files (``.gz`` or not) flat or in torchvision's
``FashionMNIST/raw/`` layout. Compressed files are unpacked once into the cache (``cache.py``:
one writer at a time, every file renamed into place whole).
"""
from __future__ import annotations

import gzip
from pathlib import Path

from torchvision.datasets import FashionMNIST

from .base import DatasetNotFound, ImageData, uint8_to_unit
from .cache import cache_dir, cache_lock, copy_atomically

SYSTEM_ROOT = Path("/usr/share/datasets/fashion-mnist")
FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _find_files(directory: Path, folder: str = "FashionMNIST") -> dict[str, Path] | None:
    """The four IDX files in ``directory`` (flat or <folder>/raw), plain or gzipped; None if incomplete."""
    for d in (directory, directory / folder / "raw"):
        found = {}
        for name in FILES:
            for candidate in (d / name, d / f"{name}.gz"):
                if candidate.is_file():
                    found[name] = candidate
                    break
        if len(found) == len(FILES):
            return found
    return None


def _stage(files: dict[str, Path], dest_root: Path, folder: str = "FashionMNIST") -> Path:
    """Lay the files out as torchvision expects (dest_root/<folder>/raw/<name>), unpacking .gz."""
    raw = dest_root / folder / "raw"
    with cache_lock(dest_root):
        raw.mkdir(parents=True, exist_ok=True)
        for name, src in files.items():
            dst = raw / name
            if not (dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime):
                copy_atomically(lambda: gzip.open(src, "rb") if src.suffix == ".gz" else open(src, "rb"), dst)
    return dest_root


def idx_root(title: str, tv_class, key: str, root: str | None, system_root: Path, download: bool, howto: str) -> Path:
    """A torchvision root holding ``tv_class``'s four IDX files: the user's root, ``system_root``, download."""
    folder = tv_class.__name__  # torchvision's layout: <root>/<class name>/raw/<file>
    looked = []
    for directory in [Path(root).expanduser() if root else None, system_root]:
        if directory is None:
            continue
        looked.append(str(directory))
        files = _find_files(directory, folder)
        if files is None:
            continue
        if all(p.parent == directory / folder / "raw" and p.suffix != ".gz" for p in files.values()):
            return directory  # already torchvision's layout
        return _stage(files, cache_dir() / key, folder)
    if download:
        dest = cache_dir() / key
        looked.append(f"{dest} (torchvision download)")
        try:
            with cache_lock(dest):  # torchvision writes its files in place: one downloader at a time
                tv_class(str(dest), train=True, download=True)
            return dest
        except Exception as err:  # no network, or a server error: report below with the rest
            reason = f" The download failed: {' '.join(str(err).split())}."
    else:
        reason = " Download was disabled (data.download=false)."
    raise DatasetNotFound(
        f"{title} was not found. jemkit looked for the four IDX files "
        f"({', '.join(FILES)}, optionally .gz) in: {'; '.join(looked)}.{reason} To get the data: {howto}"
    )


def _torchvision_root(root: str | None, download: bool) -> Path:
    return idx_root("Fashion-MNIST", FashionMNIST, "fashion-mnist", root, SYSTEM_ROOT, download,
                    "on Debian/Ubuntu run `apt-get install dataset-fashion-mnist` (installs them in "
                    f"{SYSTEM_ROOT}), or download the files from the Fashion-MNIST repository "
                    "(github.com/zalandoresearch/fashion-mnist) into a folder and pass it with "
                    "`--set data.root=FOLDER`, or run once with network access so torchvision can download them.")


def load_fashion_mnist(root: str | None = None, download: bool = True, **_) -> ImageData:
    """The standard 60,000 / 10,000 split as (N, 1, 28, 28) float32 in [−1, 1] (x/255·2 − 1)."""
    tv_root = _torchvision_root(root, download)
    train = FashionMNIST(str(tv_root), train=True, download=False)
    test = FashionMNIST(str(tv_root), train=False, download=False)
    return ImageData(
        name="fashion-mnist",
        x_train=uint8_to_unit(train.data).unsqueeze(1), y_train=train.targets.long(),
        x_test=uint8_to_unit(test.data).unsqueeze(1), y_test=test.targets.long(),
        num_classes=10,
        class_names=list(CLASSES),
        preprocessing={"range": [-1.0, 1.0], "scaling": "pixel / 255 * 2 - 1", "layout": "NCHW"},
        root=root,
    )
