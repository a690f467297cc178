"""Predictors of the predictor–corrector sampler (Song et al. 2021, Sec. 4.2, App. E–G).

Each predictor is a pure function

    predictor(key, sde, score_fn, x, t, n) -> (x, x_mean)

advancing x from t to t - T/n on an n-step grid; `x_mean` is the step without its
fresh noise (returned as the denoised sample after the last step). Each evaluates
`score_fn` exactly once, at (x, t): the PC sampler passes the score it computed there
(`scorejax.sampling.pc`; `tests/test_sampling.py` checks the contract). `sde` is the
forward SDE; everything SDE-specific is read from it (its discretization, its
ancestral step), never from its class.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import jax

from scorejax import sde as sde_lib
from scorejax.sde import batch_broadcast

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]
Predictor = Callable[[Array, sde_lib.SDE, ScoreFn, Array, Array, int], tuple[Array, Array]]


def euler_maruyama(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array,
                   t: Array, n: int) -> tuple[Array, Array]:
  """Euler–Maruyama step of the reverse SDE ([SDE] Eq. 6) with dt = -T/n."""
  dt = -sde.T / n
  drift, diffusion = sde.reverse(score_fn).sde(x, t)
  x_mean = x + drift * dt
  z = jax.random.normal(key, x.shape, x.dtype)
  return x_mean + batch_broadcast(diffusion, x) * math.sqrt(-dt) * z, x_mean


def reverse_diffusion(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array,
                      t: Array, n: int) -> tuple[Array, Array]:
  """Reverse-diffusion step ([SDE] Eq. 46): x_{i-1} = x_i - f_i + G_i^2 s + G_i z."""
  f, G = sde.reverse(score_fn).discretize(x, t, n)
  x_mean = x - f
  z = jax.random.normal(key, x.shape, x.dtype)
  return x_mean + batch_broadcast(G, x) * z, x_mean


def ancestral(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array,
              t: Array, n: int) -> tuple[Array, Array]:
  """Ancestral sampling of the SDE's discrete chain ([SDE] Eq. 47; SMLD for VE, DDPM for VP):

      x_{i-1} = a_i x_i + b_i s(x_i, t_i) + c_i z   with (a, b, c) = sde.ancestral_coeffs(t, n).
  """
  a, b, c = sde.ancestral_coeffs(t, n)
  x_mean = batch_broadcast(a, x) * x + batch_broadcast(b, x) * score_fn(x, t)
  return x_mean + batch_broadcast(c, x) * jax.random.normal(key, x.shape, x.dtype), x_mean


def no_predictor(key, sde, score_fn, x, t, n):
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
