"""Accuracy and negative log-likelihood of p(y|x) on a labelled set."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def classification_metrics(logits: Tensor, y: Tensor) -> dict[str, float]:
    """accuracy = mean[argmax f(x) = y];  nll = mean −log softmax(f(x))[y] (nats)."""
    return {
        "accuracy": (logits.argmax(1) == y).float().mean().item(),
        "nll": F.cross_entropy(logits, y).item(),
    }
