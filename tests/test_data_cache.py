"""The download/unpack cache under concurrent first use: several processes filling a fresh cache at once."""
import hashlib
import multiprocessing
import threading
import time

import pytest

from jemkit.data import load_dataset, locate
from jemkit.data.cache import copy_atomically
from test_data import make_fake_fmnist

WORKERS = 3


def _digest(d) -> str:
    h = hashlib.sha256()
    for t in (d.x_train, d.y_train, d.x_test, d.y_test):
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _load_at_once(barrier, root: str, cache: str, results) -> None:
    """Child: wait for the others, then load Fashion-MNIST from gzipped IDX files (unpacked into the cache)."""
    import os

    os.environ["JEMKIT_CACHE"] = cache
    barrier.wait()
    try:
        results.put(("ok", _digest(load_dataset("fashion-mnist", root=root, download=False))))
    except Exception as err:  # noqa: BLE001 - the parent asserts on it
        results.put(("error", f"{type(err).__name__}: {err}"))


def test_concurrent_first_use_of_a_fresh_cache(tmp_path, monkeypatch):
    root, cache = tmp_path / "fm", tmp_path / "cache"
    make_fake_fmnist(root, n_train=3000, n_test=500, compress=True)  # a few MB to unpack: a wide race window
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_load_at_once, args=(barrier, str(root), str(cache), results)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [status for status, _ in outcomes] == ["ok"] * WORKERS, outcomes
    monkeypatch.setenv("JEMKIT_CACHE", str(cache))
    expected = _digest(load_dataset("fashion-mnist", root=str(root), download=False))  # from the filled cache
    assert {digest for _, digest in outcomes} == {expected}
    raw = cache / "fashion-mnist" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"])


def test_concurrent_downloads_fetch_once(tmp_path, monkeypatch):
    """Two loaders that both miss the data: the second waits for the first's download and uses it."""
    monkeypatch.setattr(locate, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setenv("JEMKIT_CACHE", str(tmp_path / "cache"))
    fetches = []

    def fetch(dest):
        fetches.append(dest)
        time.sleep(0.5)  # a slow download: the other loader arrives meanwhile
        (dest / "toy").mkdir(parents=True)
        (dest / "toy" / "data.bin").write_bytes(b"data")

    source = locate.Source("toy", "Toy", lambda with_train: [("toy/data.bin", None)], aliases=(), howto="-", fetch=fetch)
    roots = []
    threads = [threading.Thread(target=lambda: roots.append(locate.locate(source, None, download=True))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert roots == [tmp_path / "cache" / "toy"] * 2 and len(fetches) == 1


def test_a_failed_copy_leaves_neither_the_file_nor_its_temporary(tmp_path):
    def broken_source():
        raise OSError("the source vanished")

    with pytest.raises(OSError, match="vanished"):
        copy_atomically(broken_source, tmp_path / "file")
    assert list(tmp_path.iterdir()) == []


def test_a_copy_replaces_an_existing_file_whole(tmp_path):
    (tmp_path / "src").write_bytes(b"new contents")
    (tmp_path / "file").write_bytes(b"old")
    copy_atomically(lambda: open(tmp_path / "src", "rb"), tmp_path / "file")
    assert (tmp_path / "file").read_bytes() == b"new contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "src"]
