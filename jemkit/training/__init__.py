"""Training: the loop, the per-objective steps, and the divergence guard (checkpoints: ``jemkit.checkpoint``)."""
from .guard import DivergenceError
from .steps import STEPS, jem_step
from .trainer import TrainingInterrupted, TrainResult, build_model, train

__all__ = ["STEPS", "DivergenceError", "TrainResult", "TrainingInterrupted", "build_model", "jem_step", "train"]
