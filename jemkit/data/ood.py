"""Out-of-distribution sets for an in-distribution test set (DESIGN.md §4), all in [−1, 1].

For an (N, C, H, W) test set: uniform noise, Gaussian noise (clipped), constant images,
vertically flipped test images, and "Interp" (JEM: the mean of two random test images).
For 28×28 grayscale data add scikit-learn's digits, upsampled to 28×28 ("digits"), and printed
characters rendered MNIST-style ("glyphs", ``glyphs.glyph_images``: thin strokes on black, the kind of
near-OOD image — MNIST, KMNIST, notMNIST — that likelihood models rank above their own data; letters only
for an MNIST model).
For 32×32 RGB data add the real sets JEM evaluates CIFAR-10 against — SVHN test ("svhn"),
CIFAR-100 test ("cifar100"), CelebA test resized to 32×32 ("celeba") — and CIFAR-10 test
("cifar10"), each except the in-distribution set itself, whenever its files are found where the
dataset's own loader looks (``data.root``, /usr/share/datasets/<name>, the download cache; never
downloaded here). A set that is absent is skipped with a logged note.
A user's own sets (``extra``, from ``user.load_ood_set``) are added beside these under their names.
"""
from __future__ import annotations

import logging
import string

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import ImageData, uint8_to_unit
from .celeba import CELEBA_SOURCE, celeba_images, celeba_split_size
from .cifar import CIFAR10_SOURCE, CIFAR100_SOURCE, cifar_images
from .glyphs import CHARACTERS, glyph_images
from .locate import Source, find
from .svhn import SVHN_SOURCE, svhn_images

log = logging.getLogger("jemkit")
REAL_SETS: dict[str, Source] = {"svhn": SVHN_SOURCE, "cifar10": CIFAR10_SOURCE, "cifar100": CIFAR100_SOURCE, "celeba": CELEBA_SOURCE}
_noted: set[str] = set()  # each "skipped" note once per process (model and baseline see the same sets)


def _test_images(name: str, tv_root, n: int, generator: torch.Generator | None) -> Tensor:
    """n random test images of a real set as uint8 (n, 3, 32, 32); CelebA decodes only the n it picks."""
    if name == "celeba":
        idx = torch.randperm(celeba_split_size(tv_root, "test"), generator=generator)[:n]
        return celeba_images(tv_root, "test", idx)[0]
    if name == "svhn":
        x = svhn_images(tv_root, "test")[0]
    else:
        from torchvision.datasets import CIFAR10, CIFAR100

        x = cifar_images((CIFAR10 if name == "cifar10" else CIFAR100)(str(tv_root), train=False))[0]
    return x[torch.randperm(len(x), generator=generator)[:n]]


def real_ood_sets(data: ImageData, n: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """The real 32×32 RGB OOD sets whose files are found, as float32 in [−1, 1] on the CPU."""
    sets = {}
    for name, source in REAL_SETS.items():
        if name == data.name:
            continue
        tv_root, looked = find(source, data.root, with_train=name != "svhn")
        if tv_root is None:
            note = f"OOD set '{name}' skipped: {source.title} was not found in {'; '.join(looked)}"
            if note not in _noted:
                _noted.add(note)
                log.warning(note)
            continue
        sets[name] = uint8_to_unit(_test_images(name, tv_root, n, generator))
    return sets


BUILT_IN = ("uniform", "gaussian", "constant", "flip", "interp", "digits", "glyphs", *REAL_SETS, "mean")  # names a user set may not take ("mean": ood_best.mean)


def user_sets(extra: dict[str, Tensor], shape: tuple[int, ...], n: int, device) -> dict[str, Tensor]:
    """The first ``n`` images of each user set, on ``device``; names must be new and shapes ``shape``."""
    for name, x in extra.items():
        if name in BUILT_IN:
            raise ValueError(f"OOD set name '{name}' is a built-in set's ({', '.join(BUILT_IN)}); choose another name")
        if tuple(x.shape[1:]) != tuple(shape):
            raise ValueError(f"OOD set {name} has images {'x'.join(map(str, x.shape[1:]))}, "
                             f"the model takes {'x'.join(map(str, shape))}")
    return {name: x[:n].to(device) for name, x in extra.items()}


def ood_sets(data: ImageData, n: int | None = None, generator: torch.Generator | None = None,
             extra: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Name → (n, C, H, W) tensor on the test set's device (user sets in ``extra``: their first n, or fewer).
    ``n`` defaults to the test-set size."""
    x = data.x_test
    n = min(n or len(x), len(x))
    user = user_sets(extra or {}, data.shape, n, x.device)  # checked first; draws nothing from ``generator``
    shape, dev = (n, *x.shape[1:]), x.device

    def rand(*s):
        return torch.rand(s, generator=generator).to(dev)

    def randn(*s):
        return torch.randn(s, generator=generator).to(dev)

    def pick(k):
        return x[torch.randperm(len(x), generator=generator)[:k].to(dev)]

    sets = {
        "uniform": rand(*shape) * 2 - 1,
        "gaussian": randn(*shape).clamp_(-1, 1),
        "constant": (rand(n, 1, 1, 1) * 2 - 1).expand(shape).contiguous(),
        "flip": pick(n).flip(2),
        "interp": 0.5 * (pick(n) + pick(n)),
    }
    if x.shape[1:] == (1, 28, 28) and data.name != "digits":
        from .digits import digits_images

        d, _ = digits_images()
        d = d[torch.randperm(len(d), generator=generator)[:n]]
        sets["digits"] = F.interpolate(F.pad(d, (1, 1, 1, 1), value=-1.0), size=(28, 28), mode="bilinear", align_corners=False).to(dev)
        characters = string.ascii_letters if data.name == "mnist" else CHARACTERS  # an MNIST model's digits are not OOD
        sets["glyphs"] = glyph_images(n, generator, characters).to(dev)
    if x.shape[1:] == (3, 32, 32):
        sets.update({k: v.to(dev) for k, v in real_ood_sets(data, n, generator).items()})
    return {**sets, **user}
