"""Pure loss functions: ``objective(energy, ...) -> LossOutput``."""
from .jem import LossOutput, discriminative, jem_hybrid

__all__ = ["LossOutput", "discriminative", "jem_hybrid"]
