"""The energy contract and the classifier-to-energy wrapper (JEM, Grathwohl et al. 2020).

Sign convention, everywhere in jemkit: ``E(x) -> Tensor[B]``, lower is more probable,
p(x) ∝ exp(−E(x)), score = −∇ₓE(x). (The official JEM code returns −E and does ascent.)
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class Energy(Protocol):
    """Anything callable as ``energy(x, y=None) -> Tensor[B]``.

    With ``y`` given, a class-conditional energy E(x, y); otherwise the marginal E(x).
    """

    def __call__(self, x: Tensor, y: Tensor | None = None) -> Tensor: ...


class ClassifierEnergy(nn.Module):
    """Any logits network f as a JEM energy.

    E(x)    = −T · logsumexp_y f(x)[y] / T      (T = 1 gives JEM's −logsumexp f(x))
    E(x, y) = −f(x)[y]
    p(y|x)  = softmax(f(x))                     (unchanged by the wrapper)

    The temperature T is Liu et al. (2020)'s energy score; it only changes E(x).
    """

    def __init__(self, net: nn.Module, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.net = net
        self.temperature = float(temperature)

    def logits(self, x: Tensor) -> Tensor:
        """f(x): (B, K)."""
        return self.net(x)

    def energy_from_logits(self, logits: Tensor, y: Tensor | None = None) -> Tensor:
        """E from already-computed logits, so one forward pass can serve CE and E(x)."""
        if y is not None:
            return -logits.gather(1, y.view(-1, 1)).squeeze(1)
        t = self.temperature
        return -t * torch.logsumexp(logits / t, dim=1)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.energy_from_logits(self.logits(x), y)
