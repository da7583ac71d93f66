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


TINY_JEM = ["train.steps=150", "optim.warmup=0", "optim.lr=0.003", "sampler.steps=5", "model.width=8", "buffer.size=200",
            "train.eval_every=150", "train.log_every=150"]  # ~5 s on one CPU thread; test accuracy ~0.3


@pytest.fixture(scope="session")
def tiny_digits_jem(tmp_path_factory):
    """A tiny digits JEM, trained once per test session and shared by the evaluation tests."""
    import jemkit
    from jemkit.config import load_preset
    from jemkit.training import train

    run = tmp_path_factory.getbasetemp() / "tiny-digits-jem"
    if not (run / "checkpoints").is_dir():
        train(load_preset("digits-jem", TINY_JEM), run, progress=False)
    return jemkit.load(run)


@pytest.fixture(scope="session")
def tiny_digits_ce(tmp_path_factory):
    """A tiny cross-entropy digits classifier, trained once per session (mostly right on the test set)."""
    import jemkit
    from jemkit.config import load_preset
    from jemkit.training import train

    run = tmp_path_factory.getbasetemp() / "tiny-digits-ce"
    if not (run / "checkpoints").is_dir():
        train(load_preset("digits-baseline", ["train.steps=150", "optim.warmup=20", "optim.lr=3e-3", "model.width=8",
                                              "train.eval_every=150", "train.log_every=150"]), run, progress=False)
    return jemkit.load(run)


@pytest.fixture(scope="session")
def digits():
    from jemkit.data import load_dataset

    return load_dataset("digits")


def make_ctx(model, data, out_dir, label="model", seed=0):
    """A quick, silent evaluation context."""
    from jemkit.evaluation.context import EvalContext

    return EvalContext(model, data, out_dir, label, seed=seed, quick=True, progress=False)


@pytest.fixture
def model(tiny_digits_jem):
    """The evaluation tests' default model (a test module may override it)."""
    return tiny_digits_jem


@pytest.fixture
def data(digits):
    return digits
