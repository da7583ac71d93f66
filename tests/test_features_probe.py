"""The ``features`` suite: a linear probe on penultimate features, beside the same probe on a random init."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import jemkit
from jemkit.data import ImageData
from jemkit.evaluation import SUITES, evaluate
from jemkit.evaluation.context import EvalContext
from jemkit.evaluation.features import NO_HEAD_NOTE, random_init_like, suite_features
from jemkit.nets import build_net

from conftest import make_ctx

V1_JEM = Path(__file__).parent / "fixtures" / "checkpoints-v1" / "jem"
KEYS = {"probe_accuracy", "random_init_probe_accuracy", "labels_per_class", "feature_dim", "n_test"}


@pytest.fixture(scope="module")
def v1_jem():
    return jemkit.load(V1_JEM)


def separable(k: int = 4, per_class: int = 150, seed: int = 0) -> ImageData:
    """k classes of 8×8 images: one random ±0.5 template per class plus N(0, 0.5²) noise, clamped to [−1, 1]."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(k, 1, 8, 8, generator=g).sign() * 0.5

    def draw(m):
        y = torch.arange(k).repeat(m)
        return (templates[y] + 0.5 * torch.randn(len(y), 1, 8, 8, generator=g)).clamp(-1, 1), y

    (x_train, y_train), (x_test, y_test) = draw(per_class), draw(50)
    return ImageData("separable", x_train, y_train, x_test, y_test, k, [str(c) for c in range(k)])


def trained_cnn(data: ImageData, steps: int = 100) -> jemkit.Classifier:
    """A width-4 jemkit CNN fit by cross-entropy on ``data`` (under a second on one thread)."""
    torch.manual_seed(0)
    clf = jemkit.wrap(build_net("cnn", 1, data.num_classes, width=4), (1, 8, 8), normalize=(0.5, 0.5))
    opt = torch.optim.Adam(clf.parameters(), lr=1e-2)
    clf.train()
    for _ in range(steps):
        i = torch.randint(len(data.x_train), (64,))
        loss = F.cross_entropy(clf(data.x_train[i]), data.y_train[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return clf.eval()


def test_suite_is_registered_and_reports_every_key(v1_jem, digits, tmp_path):
    assert SUITES["features"] is suite_features
    rng = torch.get_rng_state()
    out = suite_features(make_ctx(v1_jem, digits, tmp_path))["features"]
    assert set(out) == KEYS
    assert out["labels_per_class"] == 10 and out["n_test"] == 200  # quick sizes
    assert out["feature_dim"] == v1_jem.net.head.in_features
    for key in ("probe_accuracy", "random_init_probe_accuracy"):
        assert 0.0 <= out[key] <= 1.0
        assert out[key] * out["n_test"] == pytest.approx(round(out[key] * out["n_test"]))  # a share of n_test images
    assert torch.equal(torch.get_rng_state(), rng)  # the random init drew from its own seeded stream


def test_probe_is_reproducible_for_one_seed(v1_jem, digits, tmp_path):
    first = suite_features(make_ctx(v1_jem, digits, tmp_path, seed=3))
    assert suite_features(make_ctx(v1_jem, digits, tmp_path, seed=3)) == first


def test_random_init_is_a_fresh_seeded_net_of_the_same_architecture(v1_jem):
    a, b = random_init_like(v1_jem, 41), random_init_like(v1_jem, 41)
    torch.manual_seed(41)
    expected = build_net("cnn", 1, 10, **v1_jem.record["net_options"]).state_dict()
    trained = v1_jem.state_dict()
    assert not a.training and a.state_dict().keys() == trained.keys()
    for name, w in a.state_dict().items():
        assert torch.equal(w, b.state_dict()[name]) and torch.equal(w, expected[name.removeprefix("net.")])
    assert not torch.equal(a.state_dict()["net.head.weight"], trained["net.head.weight"])


def test_net_trained_on_separable_data_probes_well_above_chance(tmp_path):
    data = separable()
    out = suite_features(make_ctx(trained_cnn(data), data, tmp_path))["features"]
    assert set(out) == KEYS and out["feature_dim"] == 16  # 4 · width
    assert out["probe_accuracy"] >= 0.85  # chance is 0.25


def test_options_set_sizes_and_unknown_keys_are_refused(v1_jem, digits, tmp_path):
    ctx = EvalContext(v1_jem, digits, tmp_path, "model", quick=True, progress=False,
                      options={"features": {"labels_per_class": 3, "n_test": 50}})
    out = suite_features(ctx)["features"]
    assert (out["labels_per_class"], out["n_test"]) == (3, 50)
    ctx.options = {"features": {"labels_per_clas": 3}}
    with pytest.raises(ValueError, match="did you mean 'labels_per_class'"):
        suite_features(ctx)
    ctx.options = {"features": {"n_test": 0}}
    with pytest.raises(ValueError, match="n_test must be an integer >= 1"):
        suite_features(ctx)


def test_net_without_a_linear_head_gets_a_note(tmp_path):
    data = separable()
    conv_head = jemkit.wrap(nn.Sequential(nn.Conv2d(1, 4, 8), nn.Flatten()), (1, 8, 8))  # logits from a conv
    out = suite_features(make_ctx(conv_head, data, tmp_path))["features"]
    assert out == {"labels_per_class": 10, "n_test": 200, "notes": NO_HEAD_NOTE}


def test_a_model_jemkit_cannot_rebuild_gets_only_its_own_probe(tmp_path):
    data = separable()
    mlp = jemkit.wrap(nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4)), (1, 8, 8))
    out = suite_features(make_ctx(mlp, data, tmp_path))["features"]
    assert "random_init_probe_accuracy" not in out
    assert 0.0 <= out["probe_accuracy"] <= 1.0 and out["feature_dim"] == 16
    assert "random_init_probe_accuracy not computed" in out["notes"] and "Sequential" in out["notes"]


def test_evaluate_writes_the_suite_with_its_options(tmp_path):
    m = evaluate(V1_JEM, tmp_path, suites=["features"], quick=True, progress=False, device="cpu",
                 options={"features": {"labels_per_class": 5}})
    assert m["features"]["labels_per_class"] == 5 and set(m["features"]) == KEYS
