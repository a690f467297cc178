"""Predictors of the predictor–corrector sampler (Song et al. 2021, Sec. 4.2, App. E–G).

Each predictor is a pure function

    predictor(key, sde, score_fn, x, t) -> (x, x_mean)

advancing x from t to t - T/N; `x_mean` is the step without its fresh noise
(returned as the denoised sample after the last step). `sde` is the forward SDE;
its `N` sets the step size.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from scorejax import sde as sde_lib
from scorejax.sde import _bcast

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]
Predictor = Callable[[Array, sde_lib.SDE, ScoreFn, Array, Array], tuple[Array, Array]]


def euler_maruyama(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array,
                   t: Array) -> tuple[Array, Array]:
  """Euler–Maruyama step of the reverse SDE ([SDE] Eq. 6) with dt = -T/N."""
  dt = -sde.T / sde.N
  drift, diffusion = sde.reverse(score_fn).sde(x, t)
  x_mean = x + drift * dt
  z = jax.random.normal(key, x.shape, x.dtype)
  return x_mean + _bcast(diffusion, x) * math.sqrt(-dt) * z, x_mean


def reverse_diffusion(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array,
                      t: Array) -> tuple[Array, Array]:
  """Reverse-diffusion step ([SDE] Eq. 46): x_{i-1} = x_i - f_i + G_i^2 s + G_i z."""
  f, G = sde.reverse(score_fn).discretize(x, t)
  x_mean = x - f
  z = jax.random.normal(key, x.shape, x.dtype)
  return x_mean + _bcast(G, x) * z, x_mean


def _ancestral_ve(key, sde: sde_lib.VESDE, score_fn, x, t):
  """SMLD ancestral step ([SDE] Eq. 47)."""
  i = sde.timestep_index(t)
  sigmas = sde.discrete_sigmas
  sigma = sigmas[i]
  adjacent = jnp.where(i == 0, 0.0, sigmas[jnp.maximum(i - 1, 0)])
  x_mean = x + _bcast(sigma**2 - adjacent**2, x) * score_fn(x, t)
  std = jnp.sqrt(adjacent**2 * (sigma**2 - adjacent**2) / sigma**2)
  return x_mean + _bcast(std, x) * jax.random.normal(key, x.shape, x.dtype), x_mean


def _ancestral_vp(key, sde: sde_lib.VPSDE, score_fn, x, t):
  """DDPM ancestral step ([SDE] Eq. 47; Ho et al. 2020 Alg. 2 with the score)."""
  beta = sde.discrete_betas[sde.timestep_index(t)]
  x_mean = (x + _bcast(beta, x) * score_fn(x, t)) / _bcast(jnp.sqrt(1.0 - beta), x)
  return x_mean + _bcast(jnp.sqrt(beta), x) * jax.random.normal(key, x.shape, x.dtype), x_mean


def ancestral(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array,
              t: Array) -> tuple[Array, Array]:
  """Ancestral sampling of the discrete chain (SMLD for VE, DDPM for VP)."""
  if isinstance(sde, sde_lib.VESDE):
    return _ancestral_ve(key, sde, score_fn, x, t)
  if isinstance(sde, sde_lib.VPSDE):
    return _ancestral_vp(key, sde, score_fn, x, t)
  raise ValueError(f"ancestral sampling is defined for VESDE and VPSDE, not {type(sde).__name__}; "
                   "use predictor='reverse_diffusion' or 'euler_maruyama'")


def no_predictor(key, sde, score_fn, x, t):
  return x, x


PREDICTORS: Mapping[str, Predictor] = {
    "euler_maruyama": euler_maruyama,
    "reverse_diffusion": reverse_diffusion,
    "ancestral": ancestral,
    "none": no_predictor,
}


def get_predictor(name: str | None) -> Predictor:
  name = "none" if name is None else name.lower()
  if name not in PREDICTORS:
    raise ValueError(f"unknown predictor {name!r}; choose one of {sorted(PREDICTORS)} (or None)")
  return PREDICTORS[name]
