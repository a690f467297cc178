"""Probability-flow ODE sampler (Song et al. 2021, Sec. 4.3, Eq. 13) with diffrax."""

from __future__ import annotations

from typing import Callable

import diffrax
import jax
import jax.numpy as jnp

from scorejax import checks
from scorejax import sde as sde_lib
from scorejax.sampling.denoise import tweedie_denoise
from scorejax.sampling.schedules import SAMPLING_EPS
from scorejax.sampling.solvers import evaluations_per_solve, get_solver

Array = jax.Array


def solve_reverse_ode(sde: sde_lib.SDE, score_fn: Callable[[Array, Array], Array], x_T: Array,
                      *, eps: float, rtol: float, atol: float, solver: str = "tsit5",
                      max_steps: int = 16384) -> tuple[Array, Array]:
  """Integrates the probability-flow ODE from T down to eps; returns (x_eps, nfe).

  Solved in the forward variable s = T - t (dx/ds = -f~(x, T - s)), so every
  solver and controller integrates with increasing time. Raises ValueError for
  eps outside (0, sde.T), an unknown solver, or a score_fn not shaped like x_T.
  """
  _check_ode_arguments(sde, score_fn, x_T.shape, x_T.dtype, eps, solver, "solve_reverse_ode")
  return _solve_reverse_ode(sde, score_fn, x_T, eps=eps, rtol=rtol, atol=atol, solver=solver,
                            max_steps=max_steps)


def _check_ode_arguments(sde, score_fn, shape, dtype, eps, solver, where) -> None:
  """The ODE samplers' argument checks, before any work (see `scorejax.checks`)."""
  get_solver(solver)
  checks.check_time_floor(eps, sde.T, where=where, default=SAMPLING_EPS)
  checks.check_score_shape(score_fn, shape, dtype, where=where)


def _solve_reverse_ode(sde, score_fn, x_T, *, eps, rtol, atol, solver, max_steps):
  """`solve_reverse_ode` with its arguments already checked."""
  rsde = sde.reverse(score_fn, probability_flow=True)
  batch = x_T.shape[0]
  ode_solver = get_solver(solver)

  def vector_field(s, x, args):
    t = jnp.full((batch,), sde.T - s, x.dtype)
    return -rsde.sde(x, t)[0]

  sol = diffrax.diffeqsolve(
      diffrax.ODETerm(vector_field), ode_solver, t0=0.0, t1=sde.T - eps, dt0=None,
      y0=x_T, stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
      saveat=diffrax.SaveAt(t1=True), max_steps=max_steps)
  return sol.ys[-1], evaluations_per_solve(ode_solver, sol.stats["num_steps"])


def ode_trajectory(sde: sde_lib.SDE, score_fn: Callable[[Array, Array], Array], x_T: Array, *,
                   n_frames: int = 10, eps: float = SAMPLING_EPS, rtol: float = 1e-5,
                   atol: float = 1e-5, solver: str = "tsit5",
                   max_steps: int = 16384) -> tuple[Array, Array]:
  """The probability-flow ODE's path from x_T (Song et al. 2021, Eq. 13; Fig. 2's
  deterministic trajectories): (frames (n_frames + 1, *x_T.shape), their times).

  Frames are at n_frames + 1 evenly spaced times from T down to eps (the solver's
  dense steps, not a fixed grid: the adaptive solve is the same as
  `solve_reverse_ode`'s); frame 0 is x_T and the last frame its output.
  """
  _check_ode_arguments(sde, score_fn, x_T.shape, x_T.dtype, eps, solver, "ode_trajectory")
  rsde = sde.reverse(score_fn, probability_flow=True)
  batch = x_T.shape[0]

  def vector_field(s, x, args):
    t = jnp.full((batch,), sde.T - s, x.dtype)
    return -rsde.sde(x, t)[0]

  s_frames = jnp.linspace(0.0, sde.T - eps, n_frames + 1)
  sol = diffrax.diffeqsolve(
      diffrax.ODETerm(vector_field), get_solver(solver), t0=0.0, t1=sde.T - eps, dt0=None,
      y0=x_T, stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
      saveat=diffrax.SaveAt(ts=s_frames), max_steps=max_steps)
  return sol.ys, sde.T - s_frames


def ode_sample(key: Array, sde: sde_lib.SDE, score_fn: Callable[[Array, Array], Array],
               shape: tuple[int, ...], *, rtol: float = 1e-5, atol: float = 1e-5,
               eps: float = SAMPLING_EPS, solver: str = "tsit5", denoise: bool = False,
               max_steps: int = 16384) -> tuple[Array, Array]:
  """Samples x_T ~ prior and solves the probability-flow ODE to t = eps.

  The whole batch is one ODE state (one adaptive step size). With `denoise`, a
  final Tweedie step maps x_eps to E[x_0 | x_eps]. Returns (samples, nfe) with
  nfe the score evaluations per sample (one more with `denoise`).

  Raises ValueError, before sampling, for eps outside (0, sde.T), an unknown
  solver (listing the valid ones), or a score_fn whose output is not shaped like x.
  """
  _check_ode_arguments(sde, score_fn, shape, checks.default_float_dtype(), eps, solver,
                       "ode_sample")
  x_T = sde.prior_sampling(key, shape)
  x, nfe = _solve_reverse_ode(sde, score_fn, x_T, eps=eps, rtol=rtol, atol=atol,
                              solver=solver, max_steps=max_steps)
  if denoise:
    x = tweedie_denoise(sde, score_fn, x, eps)
    nfe = nfe + 1
  return x, nfe
