"""File-backed datasets from tiny files the tests write in each dataset's real on-disk format.

CIFAR, SVHN and CelebA are read by torchvision, which checks every file's MD5 against its own
list. The tests keep that check running: ``register_checksums`` points torchvision's lists at the
MD5 sums of the files the test just wrote (monkeypatched for the test only), so a file changed
afterwards is still refused (see ``test_corrupted_file_is_refused``).
"""
import hashlib
import pickle

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torchvision.datasets import SVHN, CelebA, CIFAR10, CIFAR100

from jemkit.data import DatasetNotFound, load_dataset, ood_sets
from jemkit.data import fashion_mnist, locate, mnist
from test_data import make_fake_fmnist

CELEBA_ATTRS = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
                "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
                "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
                "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
                "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
                "Wearing_Necklace", "Wearing_Necktie", "Young"]


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- writers (real formats)

def write_cifar(root, hundred=False, per_batch=10, n_test=20):
    """cifar-10-batches-py/ (5 train batches, test_batch, batches.meta) or cifar-100-python/ (train, test, meta):
    pickled dicts with ``data`` uint8 (N, 3072) row-major RGB planes and ``labels`` / ``fine_labels``."""
    cls = CIFAR100 if hundred else CIFAR10
    folder = root / cls.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    rng, k = np.random.default_rng(0), 100 if hundred else 10
    n_train_files = len(cls.train_list)
    sizes = [per_batch * (10 if hundred else 1)] * n_train_files + [n_test * (5 if hundred else 1)]
    for (name, _), n in zip(cls.train_list + cls.test_list, sizes):
        labels = [i % k for i in range(n)]
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "filenames": [f"{i}.png" for i in range(n)]}
        entry.update({"fine_labels": labels, "coarse_labels": [l // 5 for l in labels]} if hundred else {"labels": labels})
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {cls.meta["key"]: [f"class{i}" for i in range(k)]}
    if hundred:
        meta["coarse_label_names"] = [f"super{i}" for i in range(20)]
    (folder / cls.meta["filename"]).write_bytes(pickle.dumps(meta, protocol=2))
    return root


def write_svhn(root, n_train=30, n_test=20):
    """train_32x32.mat / test_32x32.mat: X uint8 (32, 32, 3, N), y (N, 1) with labels 1..10 (10 = digit 0)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for split, n in (("train", n_train), ("test", n_test)):
        y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8), "y": y})
    return root


def write_celeba(root, n=16):
    """celeba/img_align_celeba/*.jpg (178×218) and the five list files as published (space-separated,
    two header lines where the originals have them). Partition: 12 train, 2 valid, 2 test; Smiling alternates."""
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    yy, xx = np.mgrid[:218, :178]
    checker = ((yy // 30 + xx // 30) % 2 * 255).astype(np.uint8)  # large black/white squares survive JPEG and resizing
    for name in names:
        img = np.stack([checker, 255 - checker, checker], -1) ^ rng.integers(0, 2, (218, 178, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / "img_align_celeba" / name)
    part = [0 if i % 8 < 6 else (1 if i % 8 == 6 else 2) for i in range(n)]
    (folder / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(names, part)))
    (folder / "identity_CelebA.txt").write_text("".join(f"{f} {i + 1}\n" for i, f in enumerate(names)))
    (folder / "list_bbox_celeba.txt").write_text(f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{f}    95  71 226 313\n" for f in names))
    marks = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    (folder / "list_landmarks_align_celeba.txt").write_text(f"{n}\n{marks}\n" + "".join(f"{f} 69 109 106 113 77 142 73 152 108 154\n" for f in names))
    rows = []
    for i, f in enumerate(names):
        attrs = [-1] * 40
        attrs[CELEBA_ATTRS.index("Smiling")] = 1 if i % 2 else -1
        rows.append(f + "".join(f" {a:2d}" for a in attrs) + "\n")
    (folder / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(CELEBA_ATTRS) + " \n" + "".join(rows))
    return root


def register_checksums(monkeypatch, root):
    """Point torchvision's MD5 lists at the files this test wrote under ``root`` (the check itself still runs)."""
    for cls in (CIFAR10, CIFAR100):
        folder = root / cls.base_folder
        if folder.is_dir():
            monkeypatch.setattr(cls, "train_list", [[n, md5(folder / n)] for n, _ in cls.train_list])
            monkeypatch.setattr(cls, "test_list", [[n, md5(folder / n)] for n, _ in cls.test_list])
            monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / cls.meta["filename"])})
    if (root / "test_32x32.mat").is_file():
        monkeypatch.setattr(SVHN, "split_list", {s: [url, f, md5(root / f) if (root / f).is_file() else h]
                                                 for s, (url, f, h) in SVHN.split_list.items()})
    if (root / "celeba").is_dir():
        monkeypatch.setattr(CelebA, "file_list", [(i, md5(root / "celeba" / f) if (root / "celeba" / f).is_file() else h, f)
                                                  for i, h, f in CelebA.file_list])


def isolate(monkeypatch, tmp_path):
    """No system folder, a private cache: the tests see only the files they write."""
    monkeypatch.setattr(locate, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setattr(fashion_mnist, "SYSTEM_ROOT", tmp_path / "system" / "fashion-mnist")
    monkeypatch.setattr(mnist, "SYSTEM_ROOT", tmp_path / "system" / "mnist")
    monkeypatch.setenv("JEMKIT_CACHE", str(tmp_path / "cache"))


FAKERS = {  # dataset name → writer of tiny files in its real format under a root
    "mnist": lambda root: make_fake_fmnist(root, n_train=40, n_test=20),
    "fashion-mnist": lambda root: make_fake_fmnist(root, n_train=40, n_test=20),
    "cifar10": write_cifar,
    "cifar100": lambda root: write_cifar(root, hundred=True),
    "svhn": write_svhn,
    "celeba": write_celeba,
}


def fake_dataset(name, root, monkeypatch):
    FAKERS[name](root)
    register_checksums(monkeypatch, root)
    return root


# ---------------------------------------------------------------- tests

@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    isolate(monkeypatch, tmp_path)
    return tmp_path / "data"


def check_unit_range(d):
    for x in (d.x_train, d.x_test):
        assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
        assert x.min() < -0.9 and x.max() > 0.9  # full 0..255 range used, not e.g. [0, 1]


def test_mnist_idx_files(fake_root, monkeypatch):
    d = load_dataset("mnist", root=str(fake_dataset("mnist", fake_root, monkeypatch)), download=False)
    assert d.x_train.shape == (40, 1, 28, 28) and d.x_test.shape == (20, 1, 28, 28)
    assert d.y_train.tolist() == [i % 10 for i in range(40)] and d.class_names[3] == "3"
    check_unit_range(d)


def test_cifar10_pickle_batches(fake_root, monkeypatch):
    root = fake_dataset("cifar10", fake_root, monkeypatch)
    d = load_dataset("cifar10", root=str(root), download=False)
    assert d.x_train.shape == (50, 3, 32, 32) and d.x_test.shape == (20, 3, 32, 32)
    assert d.y_test.tolist() == [i % 10 for i in range(20)] and d.class_names[:2] == ["class0", "class1"]
    check_unit_range(d)
    # pixel layout: the file's row of 3072 bytes is (R plane, G plane, B plane), each 32×32 row-major
    raw = pickle.loads((root / "cifar-10-batches-py" / "test_batch").read_bytes())["data"][3]
    expect = torch.from_numpy(raw.reshape(3, 32, 32).astype(np.float32)) / 255 * 2 - 1
    assert torch.allclose(d.x_test[3], expect)
    # the cifar-10-batches-py folder itself is accepted as data.root too
    assert load_dataset("cifar10", root=str(root / "cifar-10-batches-py"), download=False).x_train.shape[0] == 50


def test_cifar100_fine_labels(fake_root, monkeypatch):
    d = load_dataset("cifar100", root=str(fake_dataset("cifar100", fake_root, monkeypatch)), download=False)
    assert d.num_classes == 100 and d.x_train.shape == (100, 3, 32, 32) and len(d.class_names) == 100
    assert d.y_train.max() == 99


def test_svhn_mat_files(fake_root, monkeypatch):
    d = load_dataset("svhn", root=str(fake_dataset("svhn", fake_root, monkeypatch)), download=False)
    assert d.x_train.shape == (30, 3, 32, 32) and d.x_test.shape == (20, 3, 32, 32)
    assert d.y_test.tolist()[:10] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]  # the files' label 10 is digit 0
    mat = scipy.io.loadmat(fake_root / "test_32x32.mat")["X"]  # (H, W, C, N)
    assert torch.allclose(d.x_test[0], torch.from_numpy(mat[..., 0].transpose(2, 0, 1).astype(np.float32)) / 255 * 2 - 1)
    check_unit_range(d)


def test_celeba_smiling_attribute(fake_root, monkeypatch):
    d = load_dataset("celeba", root=str(fake_dataset("celeba", fake_root, monkeypatch)), download=False)
    assert d.x_train.shape == (12, 3, 32, 32) and d.x_test.shape == (2, 3, 32, 32)
    assert d.num_classes == 2 and d.class_names == ["not smiling", "smiling"]
    assert d.y_train.tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    assert "140" in d.preprocessing["resize"] and d.preprocessing["label"] == "attribute Smiling"
    check_unit_range(d)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "svhn", "celeba"])
def test_not_found_names_every_place(fake_root, tmp_path, name):
    with pytest.raises(DatasetNotFound) as err:
        load_dataset(name, root=str(fake_root), download=False)
    msg = str(err.value)
    assert str(fake_root) in msg and str(tmp_path / "system" / name) in msg
    assert "data.download=false" in msg and "data.root" in msg and "was not found" in msg


def test_corrupted_file_is_refused(fake_root, monkeypatch):
    root = fake_dataset("cifar10", fake_root, monkeypatch)
    batch = root / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:-1] + b"\0")
    with pytest.raises(DatasetNotFound, match="data_batch_2 fails torchvision's MD5 check"):
        load_dataset("cifar10", root=str(root), download=False)


def test_cifar10_ood_sets_from_the_same_root(fake_root, monkeypatch, caplog):
    for name in ("cifar10", "cifar100", "svhn"):
        fake_dataset(name, fake_root, monkeypatch)  # one root holding three sets; CelebA absent
    d = load_dataset("cifar10", root=str(fake_root), download=False)
    with caplog.at_level("WARNING", logger="jemkit"):
        sets = ood_sets(d, 8, generator=torch.Generator().manual_seed(0))
    assert set(sets) == {"uniform", "gaussian", "constant", "flip", "interp", "svhn", "cifar100"}
    for x in sets.values():
        assert x.shape == (8, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    svhn = load_dataset("svhn", root=str(fake_root), download=False).x_test
    assert all((svhn == img).all((1, 2, 3)).any() for img in sets["svhn"])  # real SVHN test images
    assert "OOD set 'celeba' skipped" in caplog.text
    again = ood_sets(d, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again["cifar100"], sets["cifar100"])  # same seed, same sets for model and baseline

    fake_dataset("celeba", fake_root, monkeypatch)
    sets = ood_sets(d, 8, generator=torch.Generator().manual_seed(0))
    assert sets["celeba"].shape == (2, 3, 32, 32)  # the fake CelebA test split has 2 images


def test_28x28_ood_sets_unchanged(fake_root, monkeypatch):
    d = load_dataset("mnist", root=str(fake_dataset("mnist", fake_root, monkeypatch)), download=False)
    assert set(ood_sets(d, 10)) == {"uniform", "gaussian", "constant", "flip", "interp", "digits", "glyphs"}
