"""Pure loss functions: ``objective(energy, ...) -> LossOutput``."""
from .jem import LossOutput, discriminative, jem_hybrid, joint_contrastive

__all__ = ["LossOutput", "discriminative", "jem_hybrid", "joint_contrastive"]
