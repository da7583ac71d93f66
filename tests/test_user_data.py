"""Bring your own data: npz files and image folders the tests write, user OOD sets, data.shape padding,
and a preset trained on an npz dataset."""
import numpy as np
import pytest
import torch
from PIL import Image

from jemkit.config import USER_DATA_PREFIXES, ConfigError, apply_overrides, load_preset
from jemkit.data import ImageData, dataset_of, load_dataset, load_ood_set, ood_sets, pad_to_shape, parse_ood
from jemkit.data.user import USER_LOADERS


# ---------------------------------------------------------------- writers

def write_folder(root, classes=("cat", "dog"), per_class=3, size=(8, 8), mode="RGB"):
    """root/<class>/<i>.png, each image a distinct pattern (class index c, image index i)."""
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = ((np.arange(size[0] * size[1]).reshape(size[1], size[0]) * (c + 1) + 17 * i) % 256).astype(np.uint8)
            a[0, 0], a[-1, -1] = 0, 255  # the full pixel range
            img = Image.fromarray(a, "L") if mode == "L" else Image.fromarray(np.stack([a, 255 - a, a // 2], -1), "RGB")
            img.save(root / name / f"{i}.png")
    return root


def write_imagefolder(root, mode="RGB", classes=("cat", "dog", "emu")):
    write_folder(root / "train", classes, 3, mode=mode)
    write_folder(root / "test", classes, 2, mode=mode)
    return root


def digits_like(rng, n, channels_last=False):
    """uint8 8×8 images (NHW, or NHWC with C = 1) and labels 0..2 tied to the picture, so a net can learn them."""
    y = np.arange(n) % 3
    x = rng.integers(0, 60, (n, 8, 8)).astype(np.uint8)
    for k in range(3):
        x[y == k, :, 2 * k : 2 * k + 3] = 250
    return (x[..., None] if channels_last else x), y


def write_npz(path, channels_last=False, **override):
    rng = np.random.default_rng(0)
    (x_train, y_train), (x_test, y_test) = digits_like(rng, 60, channels_last), digits_like(rng, 30, channels_last)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, **override}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


# ---------------------------------------------------------------- image folders

@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_imagefolder_reads_classes_shapes_and_range(tmp_path, mode):
    d = load_dataset(f"imagefolder:{write_imagefolder(tmp_path / 'set', mode)}")
    c = 1 if mode == "L" else 3
    assert d.class_names == ["cat", "dog", "emu"] and d.num_classes == 3
    assert d.x_train.shape == (9, c, 8, 8) and d.x_test.shape == (6, c, 8, 8)
    assert d.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and d.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    assert d.x_train.dtype == torch.float32 and d.x_train.min() == -1 and d.x_train.max() == 1
    first = np.asarray(Image.open(tmp_path / "set" / "train" / "cat" / "0.png"), dtype=np.float32)
    want = torch.from_numpy(first / 255 * 2 - 1)
    torch.testing.assert_close(d.x_train[0], want.unsqueeze(0) if mode == "L" else want.permute(2, 0, 1))
    assert "source" in d.preprocessing


def test_imagefolder_converts_to_the_first_images_mode(tmp_path):
    root = write_imagefolder(tmp_path / "set", "L")
    Image.new("RGB", (8, 8), (255, 0, 0)).save(root / "train" / "dog" / "9.png")
    d = load_dataset(f"imagefolder:{root}")
    assert d.x_train.shape[1] == 1


def test_imagefolder_bad_folders_name_the_culprit(tmp_path):
    root = write_imagefolder(tmp_path / "size")
    Image.new("RGB", (9, 8)).save(root / "train" / "dog" / "odd.png")
    with pytest.raises(ValueError, match=r"odd\.png: image is 9x8 pixels"):
        load_dataset(f"imagefolder:{root}")

    root = write_imagefolder(tmp_path / "broken")
    (root / "test" / "emu" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"bad\.png: unreadable image"):
        load_dataset(f"imagefolder:{root}")

    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"empty/train: no class folders"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")

    root = write_imagefolder(tmp_path / "noimg")
    (root / "train" / "fox").mkdir()
    with pytest.raises(ValueError, match=r"train/fox: no images"):
        load_dataset(f"imagefolder:{root}")

    root = write_imagefolder(tmp_path / "classes")
    write_folder(root / "test", ("yak",), 1)
    with pytest.raises(ValueError, match=r"classes/test: classes .* differ"):
        load_dataset(f"imagefolder:{root}")

    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_dataset(f"imagefolder:{tmp_path / 'nowhere'}")


# ---------------------------------------------------------------- npz

@pytest.mark.parametrize("channels_last", [False, True])
def test_npz_loads_nhw_and_nhwc(tmp_path, channels_last):
    path = write_npz(tmp_path / "d.npz", channels_last)
    d = load_dataset(f"npz:{path}")
    raw = np.load(path)["x_train"].reshape(60, 8, 8)
    assert d.x_train.shape == (60, 1, 8, 8) and d.x_test.shape == (30, 1, 8, 8)
    torch.testing.assert_close(d.x_train[:, 0], torch.from_numpy(raw / 255 * 2 - 1).float())
    assert d.num_classes == 3 and d.class_names == ["0", "1", "2"] and d.y_test.dtype == torch.int64
    assert d.preprocessing["scaling"] == "pixel / 255 * 2 - 1"


def test_npz_class_names_and_keras_labels(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    path = tmp_path / "rgb.npz"
    np.savez(path, x_train=x, y_train=np.array([[0], [1], [0], [1]]), x_test=x[:2], y_test=np.array([0, 0]),
             class_names=np.array(["a", "b", "c"]))
    d = load_dataset(f"npz:{path}")
    assert d.x_train.shape == (4, 3, 5, 6) and d.class_names == ["a", "b", "c"] and d.num_classes == 3
    torch.testing.assert_close(d.x_train[1, 2], torch.from_numpy(x[1, :, :, 2] / 255 * 2 - 1).float())


BAD_NPZ = {  # override → what the one line must say
    "missing": ({"y_test": None}, r"missing array\(s\) y_test"),
    "float images": ({"x_train": np.zeros((4, 8, 8), np.float32)}, r"x_train must hold uint8 images"),
    "rank": ({"x_test": np.zeros((8, 8), np.uint8)}, r"x_test must be images \(N, H, W\)"),
    "channels": ({"x_train": np.zeros((60, 8, 8, 4), np.uint8)}, r"x_train has 4 channels"),
    "shapes differ": ({"x_test": np.zeros((30, 9, 8), np.uint8)}, r"x_train images are 1x8x8 but x_test images are 1x9x8"),
    "float labels": ({"y_train": np.zeros(60, np.float32)}, r"y_train must hold integer labels"),
    "label count": ({"y_test": np.zeros(29, np.int64)}, r"y_test must hold one label per image"),
    "negative label": ({"y_test": -np.ones(30, np.int64)}, r"y_test has labels out of range"),
    "beyond class_names": ({"class_names": np.array(["a", "b"])}, r"y_train has labels out of range \[0, 1\] \(2 class_names\)"),
    "empty": ({"x_test": np.zeros((0, 8, 8), np.uint8), "y_test": np.zeros(0, np.int64)}, r"x_test holds no images"),
}


@pytest.mark.parametrize("case", BAD_NPZ)
def test_bad_npz_gives_one_line_naming_file_and_array(tmp_path, case):
    override, message = BAD_NPZ[case]
    path = write_npz(tmp_path / "bad.npz", **override)
    with pytest.raises(ValueError, match=message) as err:
        load_dataset(f"npz:{path}")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_unreadable_or_absent_npz(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk\.npz: not a readable \.npz"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")
    np.savez(tmp_path / "obj.npz", x_train=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"obj\.npz: not a readable \.npz"):
        load_dataset(f"npz:{tmp_path / 'obj.npz'}")
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}")


# ---------------------------------------------------------------- user OOD sets

def test_user_ood_sets_load_shape_check_and_join_the_built_in_ones(tmp_path):
    d = load_dataset(f"npz:{write_npz(tmp_path / 'd.npz')}")
    np.savez(tmp_path / "ood.npz", x=np.full((7, 8, 8, 1), 255, np.uint8))
    flat = write_folder(tmp_path / "flat", ("a", "b"), 2, mode="L")
    (flat / "loose.png").write_bytes((flat / "a" / "0.png").read_bytes())  # flat files count too
    from_npz = load_ood_set("npz:" + str(tmp_path / "ood.npz"), like=d)
    from_folder = load_ood_set(f"imagefolder:{flat}", like=d)
    assert from_npz.shape == (7, 1, 8, 8) and bool((from_npz == 1).all())
    assert from_folder.shape == (5, 1, 8, 8) and from_folder.min() >= -1 and from_folder.max() <= 1

    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = ood_sets(d, 5, generator=g())
    sets = ood_sets(d, 5, generator=g(), extra={"mine": from_npz, "folder": from_folder})
    assert set(sets) == set(plain) | {"mine", "folder"} and sets["mine"].shape == (5, 1, 8, 8)
    assert all(torch.equal(plain[k], sets[k]) for k in plain)  # user sets draw nothing from the generator
    with pytest.raises(ValueError, match="'flip' is a built-in"):
        ood_sets(d, 5, extra={"flip": from_npz})

    rgb = write_folder(tmp_path / "rgb", ("a",), 2, size=(8, 8), mode="RGB")
    with pytest.raises(ValueError, match="OOD set colour has images 3x8x8, the model takes 1x8x8"):
        load_ood_set(f"imagefolder:{rgb}", like=d, name="colour")
    np.savez(tmp_path / "nox.npz", y=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"nox\.npz: an OOD \.npz file holds its images as array 'x'"):
        load_ood_set(f"npz:{tmp_path / 'nox.npz'}", like=d)


def test_parse_ood():
    assert parse_ood("faces=imagefolder:/a/b=c") == ("faces", "imagefolder:/a/b=c")
    for bad in ("faces", "faces=/a/b", "=npz:x.npz", "faces=npz:"):
        with pytest.raises(ValueError):
            parse_ood(bad)


# ---------------------------------------------------------------- data.shape

def test_pad_to_shape_pads_with_minus_one_and_repeats_gray():
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    d = ImageData("fm", x, torch.zeros(4, dtype=torch.long), x[:2], torch.zeros(2, dtype=torch.long), 1, ["a"])
    p = pad_to_shape(d, "3x32x32")
    assert p.x_train.shape == (4, 3, 32, 32) and p.x_test.shape == (2, 3, 32, 32)
    for c in range(3):
        assert torch.equal(p.x_train[:, c, 2:30, 2:30], x[:, 0])
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert bool((p.x_train[:, :, border] == -1).all())
    assert p.preprocessing["shape"]["channels"] == "1 → 3 (gray repeated)"

    odd = pad_to_shape(d, "1x29x31")  # odd differences: the extra row / column goes bottom / right
    assert torch.equal(odd.x_train[:, :, 0:28, 1:29], x) and bool((odd.x_train[:, :, 28, :] == -1).all())
    for shape, message in (("3x16x32", "would shrink"), ("32x32", "must look like CxHxW")):
        with pytest.raises(ValueError, match=message):
            pad_to_shape(d, shape)
    with pytest.raises(ValueError, match="asks for C=1 but fm's images have 3 channels"):
        pad_to_shape(p, "1x32x32")


def test_load_dataset_applies_shape(tmp_path):
    path = write_npz(tmp_path / "d.npz")
    d = load_dataset(f"npz:{path}", shape="3x10x10")
    assert d.shape == (3, 10, 10) and "shape" in d.preprocessing
    np.savez(tmp_path / "ood.npz", x=np.full((2, 8, 8), 255, np.uint8))
    ood = load_ood_set(f"npz:{tmp_path / 'ood.npz'}", like=d)  # padded like the data
    assert ood.shape == (2, 3, 10, 10) and bool((ood[:, :, 1:9, 1:9] == 1).all()) and bool((ood[:, :, 0] == -1).all())
    cfg = apply_overrides(load_preset("digits-jem"), [f"data.name=npz:{path}", "data.shape=3x10x10"])
    assert dataset_of({"config": cfg.to_dict()}).shape == (3, 10, 10)
    with pytest.raises(ValueError, match="points"):
        load_dataset("moons", shape="1x2x2", n_train=10, n_test=10)


# ---------------------------------------------------------------- configs and training

def test_config_accepts_user_specs_and_checks_shape():
    assert {p.rstrip(":") for p in USER_DATA_PREFIXES} == set(USER_LOADERS)
    cfg = load_preset("digits-jem", ["data.name=imagefolder:/some/dir", "data.shape=3x32x32"])
    assert cfg.data.name == "imagefolder:/some/dir" and cfg.data.shape == "3x32x32"
    for bad, message in ((["data.shape=32x32"], "data.shape must look like CxHxW"),
                         (["data.name=zip:/x"], "your own as npz:FILE"),
                         (["data.name=npz:"], "data.name")):
        with pytest.raises(ConfigError, match=message):
            load_preset("digits-jem", bad)


def test_preset_trains_on_an_npz_dataset(tmp_path):
    from jemkit.training import train

    path = write_npz(tmp_path / "d.npz")
    cfg = load_preset("digits-jem", [f"data.name=npz:{path}", "model.width=4", "train.steps=2", "optim.warmup=0",
                                     "sampler.steps=2", "buffer.size=20", "data.batch_size=8", "train.log_every=1",
                                     "train.eval_every=2", "train.sample_every=2", "train.tensorboard=false"])
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.checkpoint.is_file() and 0.0 <= result.test_accuracy <= 1.0
    import jemkit

    model = jemkit.load(tmp_path / "run")
    assert model.record["class_names"] == ["0", "1", "2"] and dataset_of(model.record).x_test.shape == (30, 1, 8, 8)
