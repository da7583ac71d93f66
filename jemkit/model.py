"""The modules users get from ``jemkit.load``: a backbone plus what it expects as input.

``Classifier`` maps images to logits (the JEM energy is built on it); ``ScoreModel`` maps (x, σ) to a
score s(x, σ) ≈ ∇ₓ log p_σ(x) and has no energy and no classes (``train.objective = dsm | ssm | ncsn``).
``wrap`` makes a ``Classifier`` of any user module, with the record a checkpoint would carry.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .config import Config


def check_input(x: Tensor, input_shape: tuple[int, ...], check_finite: bool, what: str = "inputs") -> None:
    """Refuse ``x`` unless it is floating point of shape (N, *input_shape) (and finite, with ``check_finite``)."""
    if x.dim() != 1 + len(input_shape) or tuple(x.shape[1:]) != input_shape:
        expected = "(N, " + ", ".join(map(str, input_shape)) + ")"
        raise ValueError(f"expected {what} of shape {expected} scaled to [-1, 1], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor of {what} in [-1, 1], got dtype {x.dtype}")
    if check_finite and not torch.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or Inf values ({int((~torch.isfinite(x)).sum())} of {x.numel()})")


class Classifier(nn.Module):
    """Maps images in [−1, 1], shape (N, C, H, W), to logits (N, K).

    ``input_shape`` is (C, H, W); ``preprocessing`` records how raw data became model input
    (range, scaling, training noise), so a loaded model knows what it expects.
    ``check_finite`` also refuses NaN/Inf pixels (one host sync per call; the trainer turns it off
    on its hot path, where the divergence guard watches the energies instead).
    """

    def __init__(self, net: nn.Module, input_shape: tuple[int, int, int], num_classes: int, preprocessing: dict | None = None):
        super().__init__()
        self.net = net
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.preprocessing = dict(preprocessing or {})
        self.check_finite = True

    def check_input(self, x: Tensor) -> None:
        check_input(x, self.input_shape, self.check_finite, "images")

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.net(x)


class ScoreModel(nn.Module):
    """Maps x of shape (N, *input_shape) and σ (a number or (N,)) to the score, shaped like x.

    ``input_shape`` is (C, H, W) for images in [−1, 1] or (D,) for points; ``preprocessing`` and
    ``check_finite`` as for ``Classifier``.
    """

    def __init__(self, net: nn.Module, input_shape: tuple[int, ...], preprocessing: dict | None = None):
        super().__init__()
        self.net = net
        self.input_shape = tuple(int(s) for s in input_shape)
        self.preprocessing = dict(preprocessing or {})
        self.check_finite = True

    def forward(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        check_input(x, self.input_shape, self.check_finite)
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        return self.net(x, sigma.expand(x.shape[0]) if sigma.dim() == 0 else sigma)


@torch.no_grad()
def predict_logits(model: nn.Module, x: Tensor, batch_size: int = 500) -> Tensor:
    """Logits for all of ``x`` in eval mode (mode restored afterwards); (N, K) on x's device."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


# ---------------------------------------------------------------- a user's module as a Classifier

MODEL_INPUT = "x01 = (x + 1) / 2, then (x01 - mean) / std per channel"
Normalize = tuple[float | Sequence[float], float | Sequence[float]]


class InputConvention(nn.Module):
    """jemkit's data space → a user model's input: x ∈ [−1, 1] ↦ x01 = (x + 1)/2 ∈ [0, 1] ↦ (x01 − mean)/std.

    mean = 0, std = 1 feeds [0, 1] images (torchvision's ``ToTensor`` convention); mean = std = 0.5 gives
    back x itself. ``mean`` and ``std`` are per channel and not part of the state_dict (the record holds them).
    """

    def __init__(self, module: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.module = module
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        x01 = (x + 1) / 2
        return self.module((x01 - self.mean) / self.std)


def with_input_convention(net: nn.Module, preprocessing: dict) -> nn.Module:
    """``net`` behind an ``InputConvention`` when ``preprocessing`` records one (models made by ``wrap``)."""
    norm = preprocessing.get("normalize")
    return InputConvention(net, norm["mean"], norm["std"]) if norm else net


def wrap(module: nn.Module, input_shape: Sequence[int], num_classes: int | None = None, normalize: Normalize | None = None,
         class_names: Sequence[str] | None = None) -> Classifier:
    """A ``Classifier`` (what ``jemkit.load`` returns) of any module mapping images to logits (N, K).

    jemkit keeps images in [−1, 1] and samples there; the module sees its own convention:
    x01 = (x + 1)/2, then (x01 − mean)/std per channel with ``normalize=(mean, std)`` (numbers or one
    per channel; e.g. ImageNet's ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))), else x01 as is.
    ``num_classes`` is read from one forward pass of zeros when not given. ``.record`` is the record a
    checkpoint would carry (objective "external", temperature 1, a default config whose chains start
    from class Gaussians fitted to the training data), so every suite and sampler works on it. Like
    ``jemkit.load``, it returns the classifier (and so ``module``) in eval mode.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    mean, std = _normalize_lists(normalize, shape[0])
    net = InputConvention(module, mean, std)
    k = _logits_width(net, shape)
    if num_classes is not None and num_classes != k:
        raise ValueError(f"num_classes={num_classes}, but the model returns {k} logits")
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} classes")
    preprocessing = {"range": [-1.0, 1.0], "layout": "NCHW", "model_input": MODEL_INPUT, "normalize": {"mean": mean, "std": std}}
    classifier = Classifier(net, shape, k, preprocessing)
    classifier.record = external_record(module, shape, k, names, preprocessing)
    classifier.checkpoint_path, classifier.ema = None, False
    return classifier.eval()


def external_record(module: nn.Module, input_shape: tuple, num_classes: int, class_names: list[str], preprocessing: dict) -> dict:
    """The checkpoint record of a wrapped module; ``arch`` is None unless it was built by ``build_net``."""
    build = getattr(module, "jemkit_build", None) or {"arch": None, "net_options": {}}
    config = Config().to_dict()
    config["model"]["arch"] = build["arch"] or "external"
    config["buffer"]["init"] = "class_gaussian"
    scripted = isinstance(module, torch.jit.ScriptModule)
    source = build["arch"] or ("a TorchScript module" if scripted else f"nn.Module {type(module).__name__}")
    return {"arch": build["arch"], "net_options": dict(build["net_options"]), "input_shape": list(input_shape),
            "num_classes": num_classes, "class_names": class_names, "dataset": None, "preprocessing": preprocessing,
            "temperature": 1.0, "objective": "external", "config": config, "source": source}


def _normalize_lists(normalize: Normalize | None, channels: int) -> tuple[list[float], list[float]]:
    """(mean, std) as one float per channel; a single number stands for every channel."""
    if normalize is None:
        return [0.0] * channels, [1.0] * channels
    if len(normalize) != 2:
        raise ValueError(f"normalize must be (mean, std), got {normalize!r}")
    out = []
    for what, v in zip(("mean", "std"), normalize):
        values = [float(t) for t in (v if isinstance(v, (list, tuple)) else [v])]
        if len(values) not in (1, channels):
            raise ValueError(f"normalize {what} needs 1 or {channels} values (one per channel), got {len(values)}")
        out.append(values * channels if len(values) == 1 else values)
    if any(s <= 0 for s in out[1]):
        raise ValueError(f"normalize std must be > 0, got {out[1]}")
    return out[0], out[1]


@torch.no_grad()
def _logits_width(net: nn.Module, shape: tuple[int, int, int]) -> int:
    """K of the (1, K) logits ``net`` returns for one image of zeros (eval mode, mode restored)."""
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    was_training = net.training
    net.eval()
    try:
        out = net(torch.zeros(1, *shape, device=device))
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise ValueError(f"the model does not take images of shape (N, {', '.join(map(str, shape))}): "
                         f"{' '.join(str(err).split())[:200]}") from err
    finally:
        net.train(was_training)
    if not isinstance(out, Tensor) or out.dim() != 2:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the model returns {got} for one image, not logits of shape (1, K)")
    return out.shape[1]
