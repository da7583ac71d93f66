"""Samplers (stateless functions), chain initializations, and the replay buffer."""
from .buffer import Draw, ReplayBuffer
from .chains import fresh_chains
from .init import INITS, uniform_init
from .langevin import langevin, langevin_chain, sgld

SAMPLERS = {"sgld": sgld, "langevin": langevin}

__all__ = ["SAMPLERS", "INITS", "Draw", "fresh_chains", "ReplayBuffer", "langevin", "langevin_chain", "sgld", "uniform_init"]
