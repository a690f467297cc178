"""The predictor–corrector sampler (Song et al. 2021, Alg. 1; App. G)."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from scorejax import sde as sde_lib
from scorejax.sampling.correctors import get_corrector
from scorejax.sampling.predictors import get_predictor

Array = jax.Array


def pc_sample(key: Array, sde: sde_lib.SDE, score_fn: Callable[[Array, Array], Array],
              shape: tuple[int, ...], *, predictor: str | None = "reverse_diffusion",
              corrector: str | None = "langevin", snr: float = 0.16, n_corrector_steps: int = 1,
              n_steps: int | None = None, eps: float = 1e-3,
              denoise: bool = True) -> tuple[Array, int]:
  """Samples `shape` (batch included) by alternating corrector and predictor steps.

  Time runs over N = `n_steps` (default `sde.N`) points linspace(T, eps, N); at each,
  `n_corrector_steps` corrector steps, then one predictor step, all inside one
  `lax.scan`. With `denoise`, the last predictor step's noise is left out (its
  mean is returned), as in the reference "noise removal".

  Returns (samples, nfe) with nfe the score evaluations per sample.
  """
  if n_steps is not None and n_steps != sde.N:
    sde = dataclasses.replace(sde, N=int(n_steps))
  predictor_fn = get_predictor(predictor)
  corrector_fn = get_corrector(corrector)
  has_predictor = predictor is not None and predictor.lower() != "none"
  has_corrector = corrector is not None and corrector.lower() != "none"
  if not (has_predictor or has_corrector):
    raise ValueError("pc_sample needs a predictor or a corrector (both are None)")

  key_init, key_steps = jax.random.split(key)
  x = sde.prior_sampling(key_init, shape)
  timesteps = jnp.linspace(sde.T, eps, sde.N)

  def step(carry, inputs):
    x, _ = carry
    t_i, k = inputs
    k_corr, k_pred = jax.random.split(k)
    t = jnp.full((shape[0],), t_i, x.dtype)
    x, x_mean = corrector_fn(k_corr, sde, score_fn, x, t, snr, n_corrector_steps)
    x, x_mean = predictor_fn(k_pred, sde, score_fn, x, t)
    return (x, x_mean), None

  keys = jax.random.split(key_steps, sde.N)
  (x, x_mean), _ = jax.lax.scan(step, (x, x), (timesteps, keys))
  nfe = sde.N * (int(has_predictor) + n_corrector_steps * int(has_corrector))
  return (x_mean if denoise else x), nfe
