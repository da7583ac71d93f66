"""jemkit: turn any PyTorch classifier into an energy-based model (JEM) — train, sample, evaluate, report.

Sign convention: E(x) -> Tensor[B], lower = more probable, p(x) ∝ exp(−E(x)).
Your own classifier: ``jemkit.wrap(module, input_shape, normalize=(mean, std))``; ``jemkit.save_model`` writes it
as a checkpoint that ``jemkit.load`` reads back.
"""
from .checkpoint import load, load_score_model, save_model
from .energy import ClassifierEnergy, Energy
from .model import Classifier, ScoreModel, wrap
from .sampling import ReplayBuffer, langevin, sgld

__version__ = "0.1.0"
__all__ = ["Classifier", "ClassifierEnergy", "Energy", "ReplayBuffer", "ScoreModel", "langevin", "load", "load_score_model",
           "save_model", "sgld", "wrap"]
