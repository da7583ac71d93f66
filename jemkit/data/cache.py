"""The download/unpack cache ($JEMKIT_CACHE, default ~/.cache/jemkit), safe under concurrent first use.

Two jemkit processes may fill the same cache at once (two ``jemkit train`` runs started together on
a fresh machine). Every writer holds the folder's lock (``filelock``, an advisory lock file beside
the folder) while it writes, and every file appears whole: it is written under a name unique to the
writer and renamed into place (``os.replace`` is atomic within a directory), so a reader never
sees a half-written file and two writers never share a temporary.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO, Callable

from filelock import FileLock

LOCK_TIMEOUT_S = 3600  # a first download of CelebA can take this long; a stuck lock fails after it


def cache_dir() -> Path:
    return Path(os.environ.get("JEMKIT_CACHE", Path.home() / ".cache" / "jemkit"))


def cache_lock(folder: Path) -> FileLock:
    """The lock of one cache folder (``<folder>.lock`` beside it): hold it while filling the folder."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder.parent / f".{folder.name}.lock"), timeout=LOCK_TIMEOUT_S)


def copy_atomically(open_src: Callable[[], BinaryIO], dst: Path) -> Path:
    """Copy the stream ``open_src()`` (e.g. a gzip reader) to ``dst``, which appears whole or not at all.

    The temporary is ``.<name>.<pid>-<random>.tmp`` in dst's folder, created exclusively (with the
    permissions any new file gets, unlike ``tempfile.mkstemp``'s owner-only ones).
    """
    tmp = dst.parent / f".{dst.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open_src() as fi, open(tmp, "xb") as fo:
            shutil.copyfileobj(fi, fo)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst
