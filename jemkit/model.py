"""The modules users get from ``jemkit.load``: a backbone plus what it expects as input.

``Classifier`` maps images to logits (the JEM energy is built on it); ``ScoreModel`` maps (x, σ) to a
score s(x, σ) ≈ ∇ₓ log p_σ(x) and has no energy and no classes (``train.objective = dsm | ssm | ncsn``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


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
