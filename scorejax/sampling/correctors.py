"""Correctors of the predictor–corrector sampler (Song et al. 2021, Alg. 4 and 5).

Each corrector is a pure function

    corrector(key, sde, score_fn, x, t, n, snr, n_steps) -> (x, x_mean)

running `n_steps` Langevin MCMC steps targeting p_t at a time t of an n-step grid
(n sets the step-size scale alpha_i, `sde.discrete_alpha`).
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from scorejax import sde as sde_lib
from scorejax.sde import batch_broadcast as _bcast

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]
Corrector = Callable[..., tuple[Array, Array]]


def _flat_norm(v: Array) -> Array:
  return jnp.linalg.norm(v.reshape(v.shape[0], -1), axis=-1)


def langevin(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array, t: Array, n: int,
             snr: float, n_steps: int) -> tuple[Array, Array]:
  """Langevin corrector ([SDE] Alg. 4): step eps = 2 alpha_i (snr ||z|| / ||s||)^2.

  As in the reference, the norms are averaged over the batch.
  """
  alpha = sde.discrete_alpha(t, n)

  def step(carry, k):
    x, _ = carry
    grad = score_fn(x, t)
    z = jax.random.normal(k, x.shape, x.dtype)
    ratio = snr * jnp.mean(_flat_norm(z)) / jnp.mean(_flat_norm(grad))
    step_size = 2.0 * alpha * ratio**2
    x_mean = x + _bcast(step_size, x) * grad
    return (x_mean + _bcast(jnp.sqrt(2.0 * step_size), x) * z, x_mean), None

  (x, x_mean), _ = jax.lax.scan(step, (x, x), jax.random.split(key, n_steps))
  return x, x_mean


def annealed_langevin_corrector(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array,
                                t: Array, n: int, snr: float, n_steps: int) -> tuple[Array, Array]:
  """Annealed Langevin dynamics as a corrector ([SDE] Alg. 5 with the NCSN step rule):

  step eps = 2 alpha_i (snr sigma(t))^2, i.e. Song & Ermon 2019's alpha_i proportional to sigma_i^2.
  """
  alpha = sde.discrete_alpha(t, n)
  std = sde.sigma(t)
  step_size = 2.0 * alpha * (snr * std)**2

  def step(carry, k):
    x, _ = carry
    x_mean = x + _bcast(step_size, x) * score_fn(x, t)
    z = jax.random.normal(k, x.shape, x.dtype)
    return (x_mean + _bcast(jnp.sqrt(2.0 * step_size), x) * z, x_mean), None

  (x, x_mean), _ = jax.lax.scan(step, (x, x), jax.random.split(key, n_steps))
  return x, x_mean


def no_corrector(key, sde, score_fn, x, t, n, snr, n_steps):
  return x, x


CORRECTORS: Mapping[str, Corrector] = {
    "langevin": langevin,
    "ald": annealed_langevin_corrector,
    "none": no_corrector,
}


def get_corrector(name: str | None) -> Corrector:
  name = "none" if name is None else name.lower()
  if name not in CORRECTORS:
    raise ValueError(f"unknown corrector {name!r}; choose one of {sorted(CORRECTORS)} (or None)")
  return CORRECTORS[name]
