"""Langevin dynamics and NCSN's annealed Langevin dynamics (Song & Ermon 2019)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def langevin_dynamics(key: Array, score_fn: Callable[[Array], Array], x_init: Array, *,
                      step_size: float, n_steps: int) -> Array:
  """Unadjusted Langevin dynamics (Song & Ermon 2019, Eq. 4):

      x_{t+1} = x_t + (eps / 2) grad log p(x_t) + sqrt(eps) z_t.
  """
  def step(x, k):
    z = jax.random.normal(k, x.shape, x.dtype)
    return x + 0.5 * step_size * score_fn(x) + jnp.sqrt(step_size) * z, None

  x, _ = jax.lax.scan(step, x_init, jax.random.split(key, n_steps))
  return x


def annealed_langevin(key: Array, score_fn_sigma: Callable[[Array, Array], Array], sigmas,
                      shape: tuple[int, ...], *, n_steps_each: int = 100, step_lr: float = 2e-5,
                      denoise: bool = True, init: str = "gaussian",
                      x_init: Array | None = None) -> Array:
  """Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1).

  For each sigma_i of the decreasing ladder `sigmas`, `n_steps_each` Langevin steps
  with step alpha_i = step_lr sigma_i^2 / sigma_L^2 on score_fn_sigma(x, sigma_i).
  With `denoise`, a last Tweedie step x + sigma_L^2 s(x, sigma_L) (Song & Ermon 2020,
  Sec. 4 / App. C.2) removes the remaining sigma_L noise.

  Starts from `x_init` if given, else from N(0, sigma_1^2 I) (`init='gaussian'`,
  the SDE prior) or U[0, 1] (`init='uniform'`, NCSN's image initialization).
  """
  sigmas = jnp.asarray(sigmas, jnp.float32)
  key_init, key_run = jax.random.split(key)
  if x_init is None:
    if init == "gaussian":
      x_init = sigmas[0] * jax.random.normal(key_init, shape)
    elif init == "uniform":
      x_init = jax.random.uniform(key_init, shape)
    else:
      raise ValueError(f"init={init!r} must be 'gaussian' or 'uniform'")
  batch = shape[0]

  def level(x, inputs):
    sigma, k = inputs
    step_size = step_lr * (sigma / sigmas[-1]) ** 2
    sigma_b = jnp.full((batch,), sigma)
    x = langevin_dynamics(k, lambda y: score_fn_sigma(y, sigma_b), x, step_size=step_size,
                          n_steps=n_steps_each)
    return x, None

  x, _ = jax.lax.scan(level, x_init, (sigmas, jax.random.split(key_run, sigmas.shape[0])))
  if denoise:
    x = x + sigmas[-1] ** 2 * score_fn_sigma(x, jnp.full((batch,), sigmas[-1]))
  return x
