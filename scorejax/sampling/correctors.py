"""Correctors of the predictor–corrector sampler (Song et al. 2021, Alg. 4 and 5).

Each corrector is a pure function

    corrector(key, sde, score_fn, x, t, snr, n_steps) -> (x, x_mean)

running `n_steps` Langevin MCMC steps targeting p_t.
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from scorejax import sde as sde_lib
from scorejax.sde import _bcast

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]
Corrector = Callable[..., tuple[Array, Array]]


def _alpha(sde: sde_lib.SDE, t: Array) -> Array:
  """alpha_i = 1 - beta_i of the discrete VP chain (1 for VE), scaling the Langevin step."""
  if isinstance(sde, (sde_lib.VPSDE, sde_lib.subVPSDE)):
    betas = jnp.linspace(sde.beta_min / sde.N, sde.beta_max / sde.N, sde.N)
    return 1.0 - betas[sde.timestep_index(t)]
  return jnp.ones_like(t)


def _flat_norm(v: Array) -> Array:
  return jnp.linalg.norm(v.reshape(v.shape[0], -1), axis=-1)


def langevin(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array, t: Array,
             snr: float, n_steps: int) -> tuple[Array, Array]:
  """Langevin corrector ([SDE] Alg. 4): step eps = 2 alpha (snr ||z|| / ||s||)^2.

  As in the reference, the norms are averaged over the batch.
  """
  alpha = _alpha(sde, t)

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
                                t: Array, snr: float, n_steps: int) -> tuple[Array, Array]:
  """Annealed Langevin dynamics as a corrector ([SDE] Alg. 5 with the NCSN step rule):

  step eps = 2 alpha (snr std(t))^2, i.e. Song & Ermon 2019's alpha_i proportional to sigma_i^2.
  """
  alpha = _alpha(sde, t)
  std = sde.marginal_coeffs(t)[1]
  step_size = 2.0 * alpha * (snr * std)**2

  def step(carry, k):
    x, _ = carry
    x_mean = x + _bcast(step_size, x) * score_fn(x, t)
    z = jax.random.normal(k, x.shape, x.dtype)
    return (x_mean + _bcast(jnp.sqrt(2.0 * step_size), x) * z, x_mean), None

  (x, x_mean), _ = jax.lax.scan(step, (x, x), jax.random.split(key, n_steps))
  return x, x_mean


def no_corrector(key, sde, score_fn, x, t, snr, n_steps):
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
