"""Datasets: digits (embedded) and Fashion-MNIST from IDX files the test writes itself."""
import gzip
import struct

import numpy as np
import pytest
import torch

from jemkit.data import BatchStream, DatasetNotFound, load_dataset, ood_sets
from jemkit.data import fashion_mnist
from jemkit.data.glyphs import _render, glyph_images


def write_idx(path, array: np.ndarray, compress: bool):
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def make_fake_fmnist(root, n_train=20, n_test=10, compress=True):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in [("train", n_train), ("t10k", n_test)]:
        write_idx(root / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, compress)


def test_digits_split_and_range():
    d = load_dataset("digits")
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_test.shape == (360, 1, 8, 8)
    assert d.x_train.min() == -1 and d.x_train.max() == 1 and d.x_train.dtype == torch.float32
    assert torch.bincount(d.y_test).min() >= 35  # stratified
    assert "range" in d.preprocessing


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_from_user_root(tmp_path, monkeypatch, compress):
    monkeypatch.setenv("JEMKIT_CACHE", str(tmp_path / "cache"))
    make_fake_fmnist(tmp_path / "fm", compress=compress)
    d = load_dataset("fashion-mnist", root=str(tmp_path / "fm"), download=False)
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    assert d.x_train.min() >= -1 and d.x_train.max() <= 1
    assert d.y_train.tolist() == [i % 10 for i in range(20)]
    assert d.class_names[0] == "T-shirt/top"


def test_fashion_mnist_missing_gives_helpful_error(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_ROOT", tmp_path / "nowhere")
    with pytest.raises(DatasetNotFound) as err:
        load_dataset("fashion-mnist", root=str(tmp_path / "empty"), download=False)
    msg = str(err.value)
    assert str(tmp_path / "empty") in msg and "nowhere" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "data.root" in msg


def test_unknown_dataset_suggests_name():
    with pytest.raises(ValueError, match="did you mean 'digits'"):
        load_dataset("digit")


def test_batch_stream_reproducible_and_resumable():
    x, y = torch.arange(40.0).view(10, 4), torch.arange(10)
    a = BatchStream(x, y, 4, seed=3, input_noise=0.1)
    b = BatchStream(x, y, 4, seed=3, input_noise=0.1)
    seen = []
    for _ in range(5):
        (xa, ya), (xb, yb) = next(a), next(b)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert 0 < (xa - x[ya]).abs().max() < 1  # noise added around the right examples
        seen.append(ya)
    assert len(set(torch.cat(seen[:2]).tolist())) == 8  # one epoch (2 batches) has no repeats
    resumed = BatchStream(x, y, 4, seed=3, input_noise=0.1)
    resumed.load_state_dict(a.state_dict())
    for _ in range(4):
        (xa, ya), (xr, yr) = next(a), next(resumed)
        assert torch.equal(xa, xr) and torch.equal(ya, yr)
    with pytest.raises(ValueError, match="larger than the dataset"):
        BatchStream(x, y, 11)


def test_ood_sets_digits_and_28x28(tmp_path, monkeypatch):
    d = load_dataset("digits")
    sets = ood_sets(d, 50, generator=torch.Generator().manual_seed(0))
    assert set(sets) == {"uniform", "gaussian", "constant", "flip", "interp"}
    for x in sets.values():
        assert x.shape == (50, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert torch.allclose(sets["constant"].amin((1, 2, 3)), sets["constant"].amax((1, 2, 3)))

    monkeypatch.setenv("JEMKIT_CACHE", str(tmp_path / "cache"))
    make_fake_fmnist(tmp_path / "fm")
    fm = load_dataset("fashion-mnist", root=str(tmp_path / "fm"), download=False)
    sets = ood_sets(fm, 10, generator=torch.Generator().manual_seed(0))
    assert "digits" in sets and sets["digits"].shape == (10, 1, 28, 28)
    assert sets["glyphs"].shape == (10, 1, 28, 28)
    assert torch.equal(ood_sets(fm, 10, generator=torch.Generator().manual_seed(0))["glyphs"], sets["glyphs"])


def test_glyphs_are_mnist_like_strokes_on_black(monkeypatch):
    g = glyph_images(40, torch.Generator().manual_seed(1))
    assert g.shape == (40, 1, 28, 28) and g.dtype == torch.float32 and g.min() >= -1 and g.max() <= 1
    assert torch.equal(g, glyph_images(40, torch.Generator().manual_seed(1)))  # reproducible from the generator
    assert not torch.equal(g, glyph_images(40, torch.Generator().manual_seed(2)))
    ink = (g > 0).flatten(1).float().mean(1)
    assert (ink > 0.02).all() and (ink < 0.6).all()  # every image has strokes, and mostly background
    border = torch.cat([g[..., :2, :].flatten(1), g[..., -2:, :].flatten(1), g[..., :, :2].flatten(1), g[..., :, -2:].flatten(1)], 1)
    assert (border == -1).float().mean() > 0.9  # fitted in MNIST's 20 x 20 box: the 28 x 28 frame's border stays black
    rows, cols = torch.arange(28.0).view(28, 1), torch.arange(28.0).view(1, 28)
    w = (g[:, 0] + 1) / 2
    cy = (w * rows).sum((1, 2)) / w.sum((1, 2))
    cx = (w * cols).sum((1, 2)) / w.sum((1, 2))
    assert ((cy - 13.5).abs() < 1.5).all() and ((cx - 13.5).abs() < 1.5).all()  # centred by centre of mass

    seen = []
    monkeypatch.setattr("jemkit.data.glyphs._render", lambda char, **kw: seen.append(char) or _render(char, **kw))
    glyph_images(30, torch.Generator().manual_seed(0), characters="xyz")
    assert set(seen) <= set("xyz") and len(seen) == 30
