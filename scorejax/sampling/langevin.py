"""Langevin dynamics and NCSN's annealed Langevin dynamics (Song & Ermon 2019)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from scorejax import checks

Array = jax.Array


def langevin_dynamics(key: Array, score_fn: Callable[[Array], Array], x_init: Array, *,
                      step_size: float, n_steps: int) -> Array:
  """Unadjusted Langevin dynamics (Song & Ermon 2019, Eq. 4):

      x_{t+1} = x_t + (eps / 2) grad log p(x_t) + sqrt(eps) z_t.

  Raises ValueError, before any step, when score_fn(x) is not shaped like x.
  """
  out = jax.eval_shape(score_fn, x_init)
  if getattr(out, "shape", None) != x_init.shape:
    raise ValueError(f"langevin_dynamics: score_fn(x) returned shape {getattr(out, 'shape', out)} "
                     f"for x of shape {x_init.shape}; a score function must return an array of "
                     "x's shape")

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

  Raises ValueError, before any step, unless `sigmas` is a non-empty decreasing
  ladder of positive numbers (checked where concrete) and score_fn_sigma(x, sigma)
  is shaped like x.
  """
  _check_sigmas(sigmas)
  checks.check_score_shape(score_fn_sigma, tuple(shape), checks.default_float_dtype(),
                           where="annealed_langevin", call="score_fn_sigma(x, sigma)")
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


def _check_sigmas(sigmas) -> None:
  """Refuses a ladder that is not 1-D, empty, non-positive or increasing (where concrete)."""
  if isinstance(sigmas, jax.core.Tracer):
    if jnp.ndim(sigmas) != 1 or jnp.shape(sigmas)[0] == 0:
      raise ValueError(f"annealed_langevin: sigmas must be a non-empty 1-D ladder, got shape "
                       f"{jnp.shape(sigmas)}")
    return
  s = np.asarray(sigmas, dtype=np.float64)
  if s.ndim != 1 or s.size == 0:
    raise ValueError(f"annealed_langevin: sigmas must be a non-empty 1-D ladder, got shape "
                     f"{s.shape}")
  if not (np.all(np.isfinite(s)) and np.all(s > 0) and np.all(np.diff(s) <= 0)):
    raise ValueError(f"annealed_langevin: sigmas={s.tolist()[:5]}{'...' if s.size > 5 else ''} "
                     "must be positive, finite and decreasing (sigma_1 > ... > sigma_L; Song & "
                     "Ermon 2019, Sec. 4.2), e.g. "
                     "scorejax.sde.ncsn_sigmas(sigma_min, sigma_max, L)")
