"""Final denoising by Tweedie's formula (Efron 2011; Song et al. 2021, App. G)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from scorejax import parameterization
from scorejax import sde as sde_lib
from scorejax.sde import batch_broadcast

Array = jax.Array


def tweedie_denoise(sde: sde_lib.SDE, score_fn: Callable[[Array, Array], Array], x: Array,
                    t: float | Array) -> Array:
  """E[x_0 | x_t] = (x_t + sigma(t)^2 grad log p_t(x_t)) / alpha(t) for the Gaussian kernel."""
  t = jnp.broadcast_to(jnp.asarray(t, x.dtype), (x.shape[0],))
  alpha, sigma = sde.marginal_coeffs(t)
  return parameterization.x0_from_score(x, score_fn(x, t), batch_broadcast(alpha, x),
                                        batch_broadcast(sigma, x))
