"""jemkit: turn any PyTorch classifier into an energy-based model (JEM) — train, sample, evaluate, report.

Sign convention: E(x) -> Tensor[B], lower = more probable, p(x) ∝ exp(−E(x)).
"""
from .checkpoint import load, load_score_model
from .energy import ClassifierEnergy, Energy
from .model import Classifier, ScoreModel
from .sampling import ReplayBuffer, langevin, sgld

__version__ = "0.1.0"
__all__ = ["Classifier", "ClassifierEnergy", "Energy", "ReplayBuffer", "ScoreModel", "langevin", "load", "load_score_model",
           "sgld"]
