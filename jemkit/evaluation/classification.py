"""Accuracy and negative log-likelihood of p(y|x) on a labelled set."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@torch.no_grad()
def predict_logits(model: nn.Module, x: Tensor, batch_size: int = 500) -> Tensor:
    """Logits for all of ``x`` in eval mode (mode restored afterwards); (N, K) on x's device."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def classification_metrics(logits: Tensor, y: Tensor) -> dict[str, float]:
    """accuracy = mean[argmax f(x) = y];  nll = mean −log softmax(f(x))[y] (nats)."""
    return {
        "accuracy": (logits.argmax(1) == y).float().mean().item(),
        "nll": F.cross_entropy(logits, y).item(),
    }
