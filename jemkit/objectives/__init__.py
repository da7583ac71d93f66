"""Pure loss functions: ``objective(energy, ...) -> LossOutput``."""
from .adversarial import adversarial_ce, default_step_size, pgd_linf
from .contrastive import contrastive_divergence, contrastive_term, ranked_negatives
from .energy_oe import energy_oe, margins_from_energies
from .jem import discriminative, jem_hybrid, joint_contrastive
from .output import LossOutput
from .tilt import jem_tilted, tilted_likelihood_term
from .score import (EnergyScore, denoising_score_matching, exact_score_matching, ncsn_loss, sliced_score_matching)

__all__ = ["LossOutput", "adversarial_ce", "default_step_size", "pgd_linf", "contrastive_divergence", "contrastive_term", "ranked_negatives", "discriminative", "energy_oe", "jem_hybrid", "margins_from_energies", "joint_contrastive",
           "EnergyScore", "denoising_score_matching", "exact_score_matching", "ncsn_loss",
           "sliced_score_matching", "jem_tilted", "tilted_likelihood_term"]
