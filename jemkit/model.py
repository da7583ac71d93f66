"""The classifier module users get from ``jemkit.load``: a backbone plus what it expects as input."""
from __future__ import annotations

import torch
from torch import Tensor, nn


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
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            expected = "(N, " + ", ".join(map(str, self.input_shape)) + ")"
            raise ValueError(f"expected images of shape {expected} scaled to [-1, 1], got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"expected a floating-point image tensor in [-1, 1], got dtype {x.dtype}")
        if self.check_finite and not torch.isfinite(x).all():
            raise ValueError(f"input images contain NaN or Inf pixels ({int((~torch.isfinite(x)).sum())} of {x.numel()})")

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.net(x)
