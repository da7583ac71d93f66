"""Samplers (stateless functions), chain initializations, the replay buffer, and samplers bound to configs."""
from .annealed import annealed_langevin, geometric_sigmas
from .buffer import Draw, ReplayBuffer
from .chains import fresh_chains
from .configured import (SAMPLERS, draw_score_samples, fresh_sampler_config, init_from_record, make_sampler, noise_levels,
                         sampler_config, sampler_from_record, training_init)
from .gaussian import Gaussian, RidgedGaussian
from .init import INITS, ClassGaussianInit, GaussianInit, build_init, uniform_init
from .langevin import langevin, langevin_chain, sgld
from .mala import mala

__all__ = ["SAMPLERS", "annealed_langevin", "geometric_sigmas", "INITS", "ClassGaussianInit", "GaussianInit", "build_init", "Draw",
           "draw_score_samples", "fresh_chains", "Gaussian", "RidgedGaussian", "init_from_record", "make_sampler", "noise_levels", "ReplayBuffer", "langevin",
           "fresh_sampler_config", "langevin_chain", "mala", "sampler_config", "sampler_from_record", "sgld", "training_init", "uniform_init"]
