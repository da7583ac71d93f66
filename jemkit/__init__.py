"""jemkit: turn any PyTorch classifier into an energy-based model (JEM) — train, sample, evaluate, report.

Sign convention: E(x) -> Tensor[B], lower = more probable, p(x) ∝ exp(−E(x)).
"""
from .energy import ClassifierEnergy, Energy
from .model import Classifier
from .sampling import ReplayBuffer, langevin, sgld
from .training.checkpoint import load

__version__ = "0.1.0"
__all__ = ["Classifier", "ClassifierEnergy", "Energy", "ReplayBuffer", "langevin", "load", "sgld"]
