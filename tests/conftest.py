import pytest
import torch
from torch import nn

from jemkit.energy import ClassifierEnergy

# The tests run tiny networks: one thread avoids OpenMP start-up and oversubscription costs
# (with two threads on a busy 2-core machine a tiny forward+backward ran 30x slower).
torch.set_num_threads(1)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class TinyNet(nn.Module):
    """A seeded tiny logits net with batch norm and dropout, to test mode/grad restoration."""

    def __init__(self, d: int = 16, k: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(d, 32), nn.BatchNorm1d(32), nn.SiLU(), nn.Dropout(0.1), nn.Linear(32, k))

    def forward(self, x):
        return self.body(x)


class GaussianEnergy:
    """E(x) = ½ (x − μ)ᵀ Σ⁻¹ (x − μ): its Langevin stationary law is N(μ, Σ)."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor):
        self.mean, self.precision = mean, torch.linalg.inv(cov)

    def __call__(self, x, y=None):
        d = x - self.mean
        return 0.5 * ((d @ self.precision) * d).sum(1)


@pytest.fixture
def tiny_energy():
    torch.manual_seed(0)
    return ClassifierEnergy(TinyNet())
