"""Time grids of the samplers, and their default time floor.

The samplers integrate the reverse process from t = T down to a floor eps > 0
rather than to 0: the score of the data distribution itself is not defined at
t = 0 for data on a lower-dimensional set, and the VE and VP kernels make the
learned score ill-conditioned there ([SDE] App. C; score_sde samples to 1e-3 and
trains from 1e-5). eps is an argument of every sampler (the config's
`sampling.eps`); `SAMPLING_EPS` is its default.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

SAMPLING_EPS = 1e-3


def uniform_time_grid(T: float, eps: float, n: int) -> Array:
  """n times linspace(T, eps, n), decreasing: the predictor–corrector grid ([SDE] App. G)."""
  return jnp.linspace(T, eps, n)
