"""Training: the loop, the per-objective steps, the divergence guard and its recovery, the state a
resume needs, and the hooks tests use (checkpoints: ``jemkit.checkpoint``)."""
from .build import build_model, build_optimizer, checkpoint_record
from .callbacks import Callback
from .guard import DivergenceError
from .steps import STEPS, jem_step
from .trainer import TrainingInterrupted, TrainResult, train

__all__ = ["STEPS", "Callback", "DivergenceError", "TrainResult", "TrainingInterrupted", "build_model",
           "build_optimizer", "checkpoint_record", "jem_step", "train"]
