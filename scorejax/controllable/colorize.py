"""Colorization as inpainting in a decoupled colour space ([SDE] Song et al. 2021, App. I.3).

An orthonormal 3 x 3 map Q (columns q_0, q_1, q_2, q_0 = (1, 1, 1) / sqrt(3)) takes a
pixel's (r, g, b) to u = (r, g, b) Q, whose first coordinate u_0 = sqrt(3) mean(r, g, b)
is the grey level up to a constant and whose other two carry only colour. A grey image
fixes u_0 everywhere and leaves the rest unknown, so colorization is inpainting of u
with mask (1, 0, 0). Because Q is orthogonal, the SDE's isotropic Gaussian noise is
the same in both spaces and the score in u-space is the rotated score,
grad_u log p_t(u) = grad_x log p_t(u Q^T) Q: the same SDE and sampler apply unchanged.
"""

from __future__ import annotations

import math
from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from scorejax import sde as sde_lib
from scorejax.controllable.inpaint import inpaint

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


def _color_map() -> np.ndarray:
  """Q with orthonormal columns: the grey axis, then two colour-difference axes."""
  grey = np.array([1.0, 1.0, 1.0]) / math.sqrt(3.0)
  red_vs_rest = np.array([2.0, -1.0, -1.0]) / math.sqrt(6.0)
  green_vs_blue = np.array([0.0, 1.0, -1.0]) / math.sqrt(2.0)
  return np.stack([grey, red_vs_rest, green_vs_blue], axis=1).astype(np.float32)


# (3, 3) orthonormal: COLOR_MAP.T @ COLOR_MAP = I, first column (1, 1, 1) / sqrt(3).
COLOR_MAP = _color_map()


def decouple(x: Array) -> Array:
  """(..., 3) RGB -> (..., 3) decoupled coordinates u = x Q (u_0 = sqrt(3) x grey)."""
  return jnp.einsum("...i,ij->...j", x, COLOR_MAP)


def couple(u: Array) -> Array:
  """The inverse of `decouple`: x = u Q^T."""
  return jnp.einsum("...j,ij->...i", u, COLOR_MAP)


def decoupled_score_fn(score_fn: ScoreFn) -> ScoreFn:
  """The score in decoupled coordinates: grad_u log p_t(u) = (grad_x log p_t)(u Q^T) Q."""
  return lambda u, t: decouple(score_fn(couple(u), t))


def colorize(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, gray: Array,
             **pc_options) -> tuple[Array, Array]:
  """Colour images (B, H, W, 3) whose channel mean equals `gray` (B, H, W, 1).

  Inpaints u = decouple(x) given u_0 = sqrt(3) gray with `scorejax.controllable.inpaint`
  (`pc_options`: its keywords, `method` included) and maps back. A last shift of each
  pixel along (1, 1, 1) by gray - mean(x) removes the rounding of the two rotations, so
  mean(x, channels) equals gray up to one float rounding.

  Returns (x, nfe), nfe as `inpaint`'s.
  """
  chex.assert_rank(gray, 4)
  chex.assert_axis_dimension(gray, -1, 1)
  y = jnp.concatenate([math.sqrt(3.0) * gray, jnp.zeros_like(gray), jnp.zeros_like(gray)], axis=-1)
  mask = jnp.asarray([1.0, 0.0, 0.0], gray.dtype)
  u, nfe = inpaint(key, sde, decoupled_score_fn(score_fn), y, mask, **pc_options)
  x = couple(u)
  return x + (gray - jnp.mean(x, axis=-1, keepdims=True)), nfe
