"""Checks of the inputs where they enter the library: up front, before any work.

Each check looks only at static values (Python numbers, concrete arrays, shapes);
a traced value (an argument of an enclosing `jax.jit`) is skipped, so the checked
functions stay jittable. Every error names the argument, its value and the fix.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def static_float(value: Any) -> float | None:
  """`value` as a Python float, or None where it is traced (not known until run time).

  Raises TypeError for a value that is neither a number nor a one-element array.
  """
  if isinstance(value, jax.core.Tracer):
    return None
  return float(value)


def check_time_floor(eps: Any, T: float, *, where: str, default: float, name: str = "eps") -> None:
  """Raises unless the time floor eps lies in the open interval (0, T).

  The samplers integrate the reverse process from T down to eps, the likelihood
  from eps up to T ([SDE] App. C): eps <= 0 reaches t = 0, where the score of the
  kernel diverges (sigma(0) = 0 for VP), and eps >= T leaves nothing (or a reversed
  interval) to integrate. `name` is how the caller spells the argument.
  """
  value = static_float(eps)
  t_end = static_float(T)
  if value is None or t_end is None:
    return
  if not (math.isfinite(value) and 0.0 < value < t_end):
    raise ValueError(f"{where}: {name}={eps!r} must lie in (0, T) = (0, {t_end:g}) (the time "
                     f"floor of the integration, T = sde.T); use {name} in that range, e.g. "
                     f"the default {default:g}")


def check_score_shape(score_fn: Callable[[Array, Array], Array], x_shape: tuple[int, ...],
                      dtype: Any, *, where: str, call: str = "score_fn(x, t)") -> None:
  """Raises unless `score_fn(x, t)` returns an array shaped like x (B, *data_shape).

  Checked once on abstract values (`jax.eval_shape`: a trace, no computation). A
  score of another shape, e.g. (B, 1), would broadcast against x inside the
  sampler and give plausible but wrong numbers. `call` is how the caller spells
  the function and its arguments in the message.
  """
  x = jax.ShapeDtypeStruct(tuple(x_shape), dtype)
  t = jax.ShapeDtypeStruct((x_shape[0],), dtype)
  out = jax.eval_shape(score_fn, x, t)
  shape = getattr(out, "shape", None)
  if shape is None or tuple(shape) != tuple(x_shape):
    got = f"shape {tuple(shape)}" if shape is not None else f"a {type(out).__name__}"
    raise ValueError(f"{where}: {call} returned {got} for x of shape {tuple(x_shape)}; "
                     "a score function must return an array of x's shape (the score "
                     "grad_x log p_t(x) of every example), e.g. reshape the network's output "
                     "to x.shape")


def default_float_dtype() -> Any:
  """JAX's default float dtype (float32, or float64 with jax_enable_x64)."""
  return jnp.result_type(float)
