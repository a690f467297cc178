"""Adaptive ODE solvers (diffrax) shared by the ODE sampler and the likelihood."""

from __future__ import annotations

from typing import Mapping

import diffrax
import jax
import jax.numpy as jnp

# Explicit Runge-Kutta solvers with an embedded error estimate (adaptive steps).
SOLVERS: Mapping[str, type[diffrax.AbstractERK]] = {
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "bosh3": diffrax.Bosh3,
    "heun": diffrax.Heun,
}


def get_solver(name: str) -> diffrax.AbstractERK:
  if name.lower() not in SOLVERS:
    raise ValueError(f"unknown ODE solver {name!r}; choose one of {sorted(SOLVERS)}")
  return SOLVERS[name.lower()]()


def evaluations_per_solve(solver: diffrax.AbstractERK, num_steps: jax.Array) -> jax.Array:
  """Vector-field evaluations of an adaptive solve with `num_steps` attempted steps.

  An s-stage explicit RK step costs s evaluations, one fewer after the first step for
  first-same-as-last tableaus (Tsit5, Dopri5, Dopri8, Bosh3). Rejected steps cost the
  same as accepted ones. diffrax's start-up evaluation at t0 is the first step's
  first stage. tests/test_sampling.py and tests/test_likelihood.py check this count
  against a host-side counter in the score function.
  """
  stages = len(solver.tableau.c) + 1
  if not solver.tableau.fsal:
    return stages * num_steps
  return (stages - 1) * num_steps + jnp.where(num_steps > 0, 1, 0)
