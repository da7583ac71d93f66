"""The ``features`` suite: a linear probe on the model's penultimate features, against the same probe on a
randomly initialized net of the same architecture.

Linear probe (Alain & Bengio 2016, the usual evaluation of self-supervised features): multinomial logistic
regression (scikit-learn, lbfgs, L2 with C = 1) on standardized features of a few labelled training images
per class, scored by its accuracy on the test set. The features are the input of the net's final linear
``head`` (``fid.ClassifierFeatures``), read in eval mode without gradients.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..data import labelled_subset
from ..checkpoint import classifier_from_record
from ..model import Classifier
from ..utils import closest
from .context import EvalContext
from .fid import ClassifierFeatures, extract_features

LABELS_PER_CLASS = {"full": 100, "quick": 10}
N_TEST_QUICK = 200  # test images probed in a quick run; a full run probes the whole test set
OPTIONS = ("labels_per_class", "n_test")  # ctx.options["features"]
SUBSET_SEED, INIT_SEED = 40, 41  # offsets to ctx.seed: which training images are labelled; the random net's init
MAX_ITER = 2000
NO_HEAD_NOTE = ("linear probe not computed: no final nn.Linear giving the logits was found in the classifier "
                "(its input would be the penultimate features; a TorchScript model's layers are not visible)")
NOT_REBUILT_NOTE = ("random_init_probe_accuracy not computed: the model's record names no architecture jemkit "
                    "can build ({source}), so no randomly initialized copy exists")


def linear_probe(train: Tensor, y_train: Tensor, test: Tensor, y_test: Tensor, max_iter: int = MAX_ITER) -> float:
    """Test accuracy of logistic regression (lbfgs) fit on ``train`` features (N, d) standardized with their
    own mean and std (the same scaling applied to ``test``, (M, d)); deterministic."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    probe.fit(train.cpu().numpy(), y_train.cpu().numpy())
    return float(probe.score(test.cpu().numpy(), y_test.cpu().numpy()))


def random_init_like(model: Classifier, seed: int) -> Classifier | None:
    """A ``Classifier`` of ``model``'s architecture (rebuilt from its record as ``jemkit.load`` does) with
    fresh weights drawn under ``seed`` on the CPU (the global RNG is left as it was), on ``model``'s device,
    in eval mode; None when the record names no architecture (a TorchScript file or a user's module)."""
    record = model.record
    if record.get("arch") is None:
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = classifier_from_record(record)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return fresh.to(device).eval()


def resolve_options(ctx: EvalContext) -> dict:
    """``labels_per_class`` (default 100, 10 when ``ctx.quick``, at most the training images of the rarest
    class) and ``n_test`` (default the whole test set, 200 when ``ctx.quick``), overridden by
    ``ctx.options["features"]``."""
    given = dict(ctx.options.get("features") or {})
    for key in given:
        if key not in OPTIONS:
            raise ValueError(f"unknown features option '{key}'{closest(key, OPTIONS)}; available: {', '.join(OPTIONS)}")
    rarest = int(torch.bincount(ctx.data.y_train.cpu(), minlength=ctx.data.num_classes).min())
    opts = {"labels_per_class": max(1, min(LABELS_PER_CLASS["quick" if ctx.quick else "full"], rarest)),
            "n_test": N_TEST_QUICK if ctx.quick else len(ctx.data.x_test), **given}
    for key, value in opts.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"features option {key} must be an integer >= 1, got {value!r}")
    return opts


def _probe(features: ClassifierFeatures, x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor) -> float:
    """``linear_probe`` accuracy on the features of (x_train, y_train) and (x_test, y_test)."""
    train, test = extract_features(features, x_train, 250), extract_features(features, x_test, 250)
    return linear_probe(train, y_train, test, y_test)


def suite_features(ctx: EvalContext) -> dict:
    """Linear-probe accuracy on the model's penultimate features (``probe_accuracy``) and on those of a
    randomly initialized net of its architecture, seeded ``ctx.seed + INIT_SEED`` (``random_init_probe_accuracy``).

    Both probes train on the same ``labels_per_class`` training images per class (drawn with seed
    ``ctx.seed + SUBSET_SEED``) and are scored on the first ``n_test`` test images. A classifier without a
    final linear head, or one that cannot be rebuilt, gets a ``notes`` string instead of the missing numbers.
    """
    opts = resolve_options(ctx)
    idx = labelled_subset(ctx.data.y_train, opts["labels_per_class"], ctx.data.num_classes, ctx.seed + SUBSET_SEED)
    x_train, y_train = ctx.data.x_train[idx], ctx.data.y_train[idx]
    x_test, y_test = ctx.data.x_test[: opts["n_test"]], ctx.data.y_test[: opts["n_test"]]
    result: dict = {"labels_per_class": opts["labels_per_class"], "n_test": len(x_test)}
    try:
        features = ClassifierFeatures(ctx.model)
    except ValueError:  # no final nn.Linear giving the logits
        return {"features": {**result, "notes": NO_HEAD_NOTE}}
    result["probe_accuracy"] = _probe(features, x_train, y_train, x_test, y_test)
    result["feature_dim"] = features.num_features
    fresh = random_init_like(ctx.model, ctx.seed + INIT_SEED)
    if fresh is None:
        result["notes"] = NOT_REBUILT_NOTE.format(source=ctx.model.record.get("source", "no source recorded"))
    else:
        result["random_init_probe_accuracy"] = _probe(ClassifierFeatures(fresh), x_train, y_train, x_test, y_test)
    return {"features": result}
