"""Samplers (stateless functions), chain initializations, and the replay buffer."""
from .annealed import annealed_langevin
from .buffer import Draw, ReplayBuffer
from .chains import fresh_chains
from .init import INITS, ClassGaussianInit, build_init, uniform_init
from .langevin import langevin, langevin_chain, sgld
from .mala import mala

SAMPLERS = {"sgld": sgld, "langevin": langevin, "mala": mala}

__all__ = ["SAMPLERS", "annealed_langevin", "INITS", "ClassGaussianInit", "build_init", "Draw", "fresh_chains", "ReplayBuffer", "langevin", "langevin_chain", "mala", "sgld", "uniform_init"]
