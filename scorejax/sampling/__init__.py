"""Samplers: predictor–corrector, probability-flow ODE, few-step, annealed Langevin dynamics."""

from scorejax.sampling.correctors import CORRECTORS, get_corrector
from scorejax.sampling.denoise import tweedie_denoise
from scorejax.sampling.few_step import FEW_STEP_METHODS, default_eps, default_method, few_step_sample
from scorejax.sampling.langevin import annealed_langevin, langevin_dynamics
from scorejax.sampling.ode import ode_sample, ode_trajectory, solve_reverse_ode
from scorejax.sampling.pc import pc_sample, pc_trajectory
from scorejax.sampling.from_config import SAMPLING_METHODS, get_sampling_fn
from scorejax.sampling.predictors import PREDICTORS, get_predictor
from scorejax.sampling.schedules import TIME_SCHEDULES, time_steps

__all__ = ["pc_sample", "pc_trajectory", "ode_sample", "annealed_langevin", "langevin_dynamics", "tweedie_denoise",
           "solve_reverse_ode", "ode_trajectory", "PREDICTORS", "CORRECTORS", "get_predictor", "get_corrector",
           "get_sampling_fn", "SAMPLING_METHODS", "few_step_sample", "time_steps",
           "FEW_STEP_METHODS", "TIME_SCHEDULES", "default_method", "default_eps"]
