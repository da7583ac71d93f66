"""Evaluation suites: accuracy, calibration, OOD detection, samples."""
from .suite import DEFAULT_SUITES, SUITES, evaluate

__all__ = ["DEFAULT_SUITES", "SUITES", "evaluate"]
