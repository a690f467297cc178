"""Correctors of the predictor–corrector sampler (Song et al. 2021, Alg. 4 and 5).

Each corrector is a pure function

    corrector(key, sde, score_fn, x, t, n, snr, n_steps) -> (x, x_mean)

running `n_steps` Langevin MCMC steps targeting p_t at a time t of an n-step grid
(n sets the step-size scale alpha_i, `sde.discrete_alpha`). Each is a `lax.scan` of its
one-step form (`CORRECTOR_STEPS`),

    corrector_step(key, sde, score, x, t, n, snr) -> (x, x_mean)

given the score at (x, t), which the PC sampler uses to evaluate the network at one
place in its loop (`scorejax.sampling.pc`).
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


def langevin_step(key: Array, sde: sde_lib.SDE, score: Array, x: Array, t: Array, n: int,
                  snr: float) -> tuple[Array, Array]:
  """One step of `langevin` from x, given `score` = s(x, t)."""
  alpha = sde.discrete_alpha(t, n)
  z = jax.random.normal(key, x.shape, x.dtype)
  ratio = snr * jnp.mean(_flat_norm(z)) / jnp.mean(_flat_norm(score))
  step_size = 2.0 * alpha * ratio**2
  x_mean = x + _bcast(step_size, x) * score
  return x_mean + _bcast(jnp.sqrt(2.0 * step_size), x) * z, x_mean


def langevin(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array, t: Array, n: int,
             snr: float, n_steps: int) -> tuple[Array, Array]:
  """Langevin corrector ([SDE] Alg. 4): step eps = 2 alpha_i (snr ||z|| / ||s||)^2.

  As in the reference, the norms are averaged over the batch.
  """
  return _scan_steps(langevin_step, key, sde, score_fn, x, t, n, snr, n_steps)


def annealed_langevin_step(key: Array, sde: sde_lib.SDE, score: Array, x: Array, t: Array,
                           n: int, snr: float) -> tuple[Array, Array]:
  """One step of `annealed_langevin_corrector` from x, given `score` = s(x, t)."""
  step_size = 2.0 * sde.discrete_alpha(t, n) * (snr * sde.sigma(t))**2
  x_mean = x + _bcast(step_size, x) * score
  z = jax.random.normal(key, x.shape, x.dtype)
  return x_mean + _bcast(jnp.sqrt(2.0 * step_size), x) * z, x_mean


def annealed_langevin_corrector(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array,
                                t: Array, n: int, snr: float, n_steps: int) -> tuple[Array, Array]:
  """Annealed Langevin dynamics as a corrector ([SDE] Alg. 5 with the NCSN step rule):

  step eps = 2 alpha_i (snr sigma(t))^2, i.e. Song & Ermon 2019's alpha_i proportional to sigma_i^2.
  """
  return _scan_steps(annealed_langevin_step, key, sde, score_fn, x, t, n, snr, n_steps)


def _scan_steps(corrector_step, key, sde, score_fn, x, t, n, snr, n_steps):
  """`n_steps` steps of `corrector_step`, the k-th with the k-th of split(key, n_steps)."""

  def step(carry, k):
    x, _ = carry
    return corrector_step(k, sde, score_fn(x, t), x, t, n, snr), None

  (x, x_mean), _ = jax.lax.scan(step, (x, x), jax.random.split(key, n_steps))
  return x, x_mean


def no_corrector(key, sde, score_fn, x, t, n, snr, n_steps):
  return x, x


CORRECTORS: Mapping[str, Corrector] = {
    "langevin": langevin,
    "ald": annealed_langevin_corrector,
    "none": no_corrector,
}


CorrectorStep = Callable[[Array, sde_lib.SDE, Array, Array, Array, int, float], tuple[Array, Array]]
CORRECTOR_STEPS: Mapping[str, CorrectorStep] = {
    "langevin": langevin_step,
    "ald": annealed_langevin_step,
}


def get_corrector(name: str | None) -> Corrector:
  name = "none" if name is None else name.lower()
  if name not in CORRECTORS:
    raise ValueError(f"unknown corrector {name!r}; choose one of {sorted(CORRECTORS)} (or None)")
  return CORRECTORS[name]


def get_corrector_step(name: str) -> CorrectorStep:
  """The one-step form of corrector `name` (ValueError listing the valid names)."""
  get_corrector(name)  # the same error for an unknown name
  return CORRECTOR_STEPS[name.lower()]
