"""Evaluation suites, one module each (accuracy, calibration, ood, samples, inpainting, distal,
likelihood, robustness), the context they share, and ``evaluate`` over them (``registry``)."""
from .registry import DEFAULT_SUITES, SUITES, check_suites, evaluate

__all__ = ["DEFAULT_SUITES", "SUITES", "check_suites", "evaluate"]
