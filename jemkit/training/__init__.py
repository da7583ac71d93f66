"""Training: the loop, the per-objective steps, and checkpoints."""
from .checkpoint import load, load_buffer, resolve_checkpoint, save_checkpoint
from .steps import STEPS, jem_step, make_sampler
from .trainer import TrainResult, build_model, train

__all__ = ["STEPS", "TrainResult", "build_model", "jem_step", "load", "load_buffer", "make_sampler",
           "resolve_checkpoint", "save_checkpoint", "train"]
