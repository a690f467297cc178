"""Samplers: predictor–corrector, probability-flow ODE, annealed Langevin dynamics."""

from scorejax.sampling.correctors import CORRECTORS, get_corrector
from scorejax.sampling.denoise import tweedie_denoise
from scorejax.sampling.langevin import annealed_langevin, langevin_dynamics
from scorejax.sampling.ode import ode_sample, solve_reverse_ode
from scorejax.sampling.pc import pc_sample, pc_trajectory
from scorejax.sampling.from_config import SAMPLING_METHODS, get_sampling_fn
from scorejax.sampling.predictors import PREDICTORS, get_predictor

__all__ = ["pc_sample", "pc_trajectory", "ode_sample", "annealed_langevin", "langevin_dynamics", "tweedie_denoise",
           "solve_reverse_ode", "PREDICTORS", "CORRECTORS", "get_predictor", "get_corrector",
           "get_sampling_fn", "SAMPLING_METHODS"]
