"""Training: the loop, the per-objective steps, checkpoints, and the divergence guard."""
from .checkpoint import CheckpointWriteError, CorruptCheckpoint, load, load_buffer, resolve_checkpoint, save_checkpoint
from .guard import DivergenceError
from .steps import STEPS, jem_step, make_sampler
from .trainer import TrainingInterrupted, TrainResult, build_model, train

__all__ = ["STEPS", "CheckpointWriteError", "CorruptCheckpoint", "DivergenceError", "TrainResult", "TrainingInterrupted",
           "build_model", "jem_step", "load", "load_buffer", "make_sampler", "resolve_checkpoint", "save_checkpoint",
           "train"]
