"""Where a dataset's files are: the user's ``data.root``, a system folder, the download cache.

Every file-backed dataset is searched the same way (DESIGN.md §4) and fails the same way: one
``DatasetNotFound`` paragraph naming each place looked, why a place was refused (files missing,
a file failing torchvision's MD5 check) and how to get the data. MD5 sums are torchvision's own
lists (``CIFAR10.train_list``, ``SVHN.split_list``, ``CelebA.file_list``), read at call time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torchvision.datasets.utils import check_integrity

from .base import DatasetNotFound
from .cache import cache_dir, cache_lock

SYSTEM_DIR = Path("/usr/share/datasets")  # <SYSTEM_DIR>/<key>, next to Debian's dataset-fashion-mnist


@dataclass(frozen=True)
class Source:
    """A torchvision-backed dataset: the files under a torchvision root, and how to get them."""

    key: str  # registry name; also the folder name under SYSTEM_DIR and the cache
    title: str
    files: Callable[[bool], list[tuple[str, str | None]]]  # (with_train) → (path under the root, md5 | None = a folder)
    aliases: tuple[str, ...]  # sub-folders of a searched directory that may be the torchvision root
    howto: str
    fetch: Callable[[Path], None] | None = None  # torchvision download into a folder

    def probe(self, directory: Path, with_train: bool = True) -> Path | str | None:
        """The torchvision root in ``directory`` (itself, an alias sub-folder, or its parent when the
        folder is the dataset's own top folder); a reason when files are there but unusable; None."""
        files = self.files(with_train)
        top = files[0][0].split("/")[0] if "/" in files[0][0] else None
        candidates = [directory, *(directory / a for a in self.aliases)]
        if top and directory.name == top:
            candidates.append(directory.parent)
        for root in candidates:
            present = [(p, md5) for p, md5 in files if (root / p).exists()]
            if not present:
                continue
            missing = [p for p, _ in files if not (root / p).exists()]
            if missing:
                return f"{len(missing)} file(s) missing, e.g. {missing[0]}"
            bad = [p for p, md5 in files if md5 is not None and not check_integrity(str(root / p), md5)]
            if bad:
                return f"{bad[0]} fails torchvision's MD5 check (truncated, or not the original release)"
            return root
        return None

    def wanted(self, with_train: bool = True) -> str:
        return ", ".join(p for p, _ in self.files(with_train))


def search_dirs(source: Source, root: str | None) -> list[Path]:
    """The user's root, then <SYSTEM_DIR>/<key>, then the download cache <JEMKIT_CACHE>/<key>."""
    dirs = [Path(root).expanduser()] if root else []
    return dirs + [SYSTEM_DIR / source.key, cache_dir() / source.key]


def find(source: Source, root: str | None, with_train: bool = True) -> tuple[Path | None, list[str]]:
    """The first usable torchvision root among ``search_dirs`` (no download), and every place looked at."""
    looked: list[str] = []
    for d in search_dirs(source, root):
        found = source.probe(d, with_train) if d.is_dir() else None
        if isinstance(found, Path):
            return found, looked
        looked.append(f"{d} ({found})" if found else str(d))
    return None, looked


def locate(source: Source, root: str | None, download: bool) -> Path:
    """The torchvision root holding ``source``'s files, downloading into the cache as a last resort."""
    found, looked = find(source, root)
    if found is not None:
        return found
    if download and source.fetch is not None:
        dest = cache_dir() / source.key
        try:
            with cache_lock(dest):  # torchvision writes files in place: one downloader at a time,
                got = source.probe(dest)  # and what another process finished downloading meanwhile is used
                if not isinstance(got, Path):
                    source.fetch(dest)
                    got = source.probe(dest)
            if isinstance(got, Path):
                return got
            reason = f" The download into {dest} gave no usable files ({got or 'nothing found'})."
        except Exception as err:  # no network, or a server error: report below with the rest
            reason = f" The download into {dest} failed: {' '.join(str(err).split())}."
    elif download:
        reason = f" {source.title} has no automatic download."
    else:
        reason = " Download was disabled (data.download=false)."
    raise DatasetNotFound(
        f"{source.title} was not found. jemkit looked for {source.wanted()} in: {'; '.join(looked)}.{reason} "
        f"To get the data: {source.howto} Then pass the folder with `--set data.root=FOLDER` "
        f"(or put it in {SYSTEM_DIR / source.key})."
    )
