"""Probability-flow ODE sampler (Song et al. 2021, Sec. 4.3, Eq. 13) with diffrax."""

from __future__ import annotations

from typing import Callable, Mapping

import diffrax
import jax
import jax.numpy as jnp

from scorejax import sde as sde_lib
from scorejax.sampling.denoise import tweedie_denoise

Array = jax.Array

SOLVERS: Mapping[str, Callable[[], diffrax.AbstractAdaptiveSolver]] = {
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "heun": diffrax.Heun,
    "bosh3": diffrax.Bosh3,
}
# Score evaluations of an adaptive solve: (at the start, per attempted step). Measured
# with a host-side counter (tests/test_sampling.py checks the table): first-same-as-last
# stages are reused, and the compiled start-up shares its evaluation at t0.
_EVALS: Mapping[str, tuple[int, int]] = {
    "tsit5": (1, 6), "dopri5": (1, 6), "dopri8": (1, 13), "heun": (0, 2), "bosh3": (1, 3)}


def get_solver(name: str) -> diffrax.AbstractAdaptiveSolver:
  if name.lower() not in SOLVERS:
    raise ValueError(f"unknown ODE solver {name!r}; choose one of {sorted(SOLVERS)}")
  return SOLVERS[name.lower()]()


def solver_nfe(solver: str, num_steps: Array) -> Array:
  """Score evaluations of an adaptive solve with `num_steps` attempted steps."""
  start, per_step = _EVALS[solver.lower()]
  return start + per_step * num_steps


def solve_reverse_ode(sde: sde_lib.SDE, score_fn: Callable[[Array, Array], Array], x_T: Array,
                      *, eps: float, rtol: float, atol: float, solver: str = "tsit5",
                      max_steps: int = 16384) -> tuple[Array, Array]:
  """Integrates the probability-flow ODE from T down to eps; returns (x_eps, num_steps).

  Solved in the forward variable s = T - t (dx/ds = -f~(x, T - s)), so every
  solver and controller integrates with increasing time.
  """
  rsde = sde.reverse(score_fn, probability_flow=True)
  batch = x_T.shape[0]

  def vector_field(s, x, args):
    t = jnp.full((batch,), sde.T - s, x.dtype)
    return -rsde.sde(x, t)[0]

  sol = diffrax.diffeqsolve(
      diffrax.ODETerm(vector_field), get_solver(solver), t0=0.0, t1=sde.T - eps, dt0=None,
      y0=x_T, stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
      saveat=diffrax.SaveAt(t1=True), max_steps=max_steps)
  return sol.ys[-1], sol.stats["num_steps"]


def ode_sample(key: Array, sde: sde_lib.SDE, score_fn: Callable[[Array, Array], Array],
               shape: tuple[int, ...], *, rtol: float = 1e-5, atol: float = 1e-5,
               eps: float = 1e-3, solver: str = "tsit5", denoise: bool = False,
               max_steps: int = 16384) -> tuple[Array, Array]:
  """Samples x_T ~ prior and solves the probability-flow ODE to t = eps.

  The whole batch is one ODE state (one adaptive step size). With `denoise`, a
  final Tweedie step maps x_eps to E[x_0 | x_eps]. Returns (samples, nfe) with
  nfe the score evaluations per sample (one more with `denoise`).
  """
  x_T = sde.prior_sampling(key, shape)
  x, num_steps = solve_reverse_ode(sde, score_fn, x_T, eps=eps, rtol=rtol, atol=atol,
                                   solver=solver, max_steps=max_steps)
  nfe = solver_nfe(solver, num_steps)
  if denoise:
    x = tweedie_denoise(sde, score_fn, x, eps)
    nfe = nfe + 1
  return x, nfe
