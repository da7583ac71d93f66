"""Pure loss functions: ``objective(energy, ...) -> LossOutput``."""
from .contrastive import contrastive_divergence, contrastive_term
from .jem import discriminative, jem_hybrid, joint_contrastive
from .output import LossOutput

__all__ = ["LossOutput", "contrastive_divergence", "contrastive_term", "discriminative", "jem_hybrid", "joint_contrastive"]
