"""Accuracy and negative log-likelihood of p(y|x) on a labelled set, and the ``accuracy`` suite."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .context import EvalContext


def classification_metrics(logits: Tensor, y: Tensor) -> dict[str, float]:
    """accuracy = mean[argmax f(x) = y];  nll = mean −log softmax(f(x))[y] (nats)."""
    return {
        "accuracy": (logits.argmax(1) == y).float().mean().item(),
        "nll": F.cross_entropy(logits, y).item(),
    }


def suite_accuracy(ctx: EvalContext) -> dict:
    """``accuracy`` and ``nll`` of the model on the whole test set."""
    return classification_metrics(ctx.logits, ctx.data.y_test)
