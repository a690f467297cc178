"""Inpainting by sequential Monte Carlo: exact in the limit of many particles.

Condition the reverse process on the whole forward path of the known part (SMCDiff,
Trippe et al. 2023), proposing with the guided drift as the twisted diffusion sampler
does (Wu et al. 2023) but weighting by the known path instead of twisting functions.
Draw one noising path of y at the grid times, y_i ~ p_{0 t_i}(. | y), jointly Gaussian
through the forward transitions

    y_i | y_{i+1} ~ N(r_i y_{i+1}, sigma_i^2 - r_i^2 sigma_{i+1}^2),   r_i = alpha_i / alpha_{i+1},

with y itself after the last step. Because the forward noise of the known
coordinates is independent of the unknown ones, p(x_0 | y_0, ..., y_n) = p(x_0 | y): the
unknown part of a reverse path whose known part follows y_i is an exact conditional
sample. P particles per example run the reverse-diffusion step ([SDE] Eq. 46)

    x_{i+1} = m(x_i) + G_i z,   m(x) = x - f_i(x) + G_i^2 s(x, t_i),

with the unknown part proposed from the reconstruction-guided mean m~ = m + G_i^2 g
(`guidance.reconstruction_guidance`) and the known part set to y_{i+1}. Each step
multiplies a particle's weight by the reverse transition's density of what it was
given over what it proposed:

    w *= N(y_{i+1}; m_known, G^2) N(x_unknown; m_unknown, G^2) / N(x_unknown; m~_unknown, G^2),

and the particles of an example are resampled (systematic resampling) when their
effective sample size drops below `ess_threshold` P. At the end one particle per example
is drawn by weight; its last step's mean is returned (the final denoising step).

Cost per output sample: P x n score evaluations and vector-Jacobian products. As P
grows the result tends to the exact conditional of the reverse-diffusion chain.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from scorejax import sde as sde_lib
from scorejax.controllable.guidance import reconstruction_guidance
from scorejax.controllable.replacement import check_eps
from scorejax.sampling.schedules import SAMPLING_EPS, uniform_steps, uniform_time_grid
from scorejax.sde import batch_broadcast

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


def known_path(key: Array, sde: sde_lib.SDE, y: Array, ts: Array) -> Array:
  """(n, *y.shape): a forward-noising path of y at the decreasing times ts (ts[-1] first)."""
  alpha, sigma = sde.marginal_coeffs(ts)
  alpha = jnp.broadcast_to(alpha, ts.shape)
  keys = jax.random.split(key, ts.shape[0])
  last = alpha[-1] * y + sigma[-1] * jax.random.normal(keys[-1], y.shape, y.dtype)

  def up(y_next, inputs):  # from time t_{i+1} up to t_i
    k, a_i, s_i, a_next, s_next = inputs
    ratio = a_i / a_next
    std = jnp.sqrt(jnp.maximum(s_i**2 - (ratio * s_next)**2, 0.0))
    y_i = ratio * y_next + std * jax.random.normal(k, y.shape, y.dtype)
    return y_i, y_i

  _, path = jax.lax.scan(up, last, (keys[:-1], alpha[:-1], sigma[:-1], alpha[1:], sigma[1:]),
                         reverse=True)
  return jnp.concatenate([path, last[None]])


def _systematic_resample(key: Array, log_w: Array) -> Array:
  """(P,) ancestor indices of one example's particles by systematic resampling."""
  p = log_w.shape[0]
  cdf = jnp.cumsum(jax.nn.softmax(log_w))
  positions = (jax.random.uniform(key) + jnp.arange(p)) / p
  return jnp.minimum(jnp.searchsorted(cdf, positions), p - 1)


def smc_inpaint(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, y: Array, known: Array, *,
                n_particles: int = 8, ess_threshold: float = 0.5, scale: float = 1.0,
                data_var: float = 1.0, n_steps: int | None = None,
                eps: float = SAMPLING_EPS, denoise: bool = True) -> tuple[Array, int]:
  """Sequential Monte Carlo inpainting (see the module docstring); returns (x, nfe).

  n_particles: P per example (the cost factor); ess_threshold: resample when the
  effective sample size falls below this fraction of P; scale, data_var: the guided
  proposal's (`guidance.reconstruction_guidance`); n_steps (default sde.N), eps and
  denoise as the PC sampler's.
  """
  check_eps(sde, eps)
  n = uniform_steps(sde, n_steps)
  b, p = y.shape[0], int(n_particles)
  data_shape = y.shape[1:]

  def tile(a):  # (B, ...) -> (B * P, ...), particle index fastest
    return jnp.repeat(a, p, axis=0)

  y_rep, known_rep = tile(y), tile(known)
  ts = uniform_time_grid(sde.T, eps, n)
  key_path, key_init, key_steps, key_pick = jax.random.split(key, 4)
  # y_path[i]: the known part at ts[i]; the step from ts[i] ends at y_path[i + 1] (y last).
  y_path = jnp.concatenate([known_path(key_path, sde, y, ts), y[None]])

  def step(carry, inputs):
    x, log_w, _ = carry
    t_i, y_next, k = inputs
    k_noise, k_resample = jax.random.split(k)
    t = jnp.full((b * p,), t_i, y.dtype)
    score, guidance = reconstruction_guidance(sde, score_fn, y_rep, known_rep, x, t,
                                              data_var=data_var)
    f, g = sde.discretize(x, t, n)
    g2 = batch_broadcast(g**2, x)
    mean = x - f + g2 * score
    drift = g2 * scale * guidance  # zero on the known part
    z = jax.random.normal(k_noise, x.shape, x.dtype)
    y_next = tile(y_next)
    x_new = jnp.where(known_rep, y_next, mean + drift + batch_broadcast(g, x) * z)
    # log N(y_next; mean, G^2) on the known part + the proposal ratio on the unknown part.
    log_known = jnp.where(known_rep, -0.5 * jnp.square(y_next - mean) / g2, 0.0)
    # log N(x; mean, G^2) - log N(x; mean + drift, G^2) at x = mean + drift + G z.
    pull = scale * guidance
    log_ratio = jnp.where(known_rep, 0.0, -batch_broadcast(g, x) * z * pull - 0.5 * drift * pull)
    log_w = log_w + jnp.sum((log_known + log_ratio).reshape(b, p, -1), axis=-1)
    x_mean = jnp.where(known_rep, y_next, mean + drift)

    ess = 1.0 / jnp.sum(jnp.square(jax.nn.softmax(log_w, axis=-1)), axis=-1)
    resample = ess < ess_threshold * p
    ancestors = jax.vmap(_systematic_resample)(jax.random.split(k_resample, b), log_w)
    ancestors = jnp.where(resample[:, None], ancestors, jnp.arange(p)[None])
    take = lambda a: jnp.take_along_axis(
        a.reshape((b, p) + data_shape), ancestors.reshape((b, p) + (1,) * len(data_shape)),
        axis=1).reshape(a.shape)
    log_w = jnp.where(resample[:, None], 0.0, log_w)
    return (take(x_new), log_w, take(x_mean)), None

  x_T = sde.prior_sampling(key_init, y_rep.shape).astype(y.dtype)
  x_T = jnp.where(known_rep, tile(y_path[0]), x_T)
  log_w = jnp.zeros((b, p), y.dtype)
  (x, log_w, x_mean), _ = jax.lax.scan(
      step, (x_T, log_w, x_T), (ts, y_path[1:], jax.random.split(key_steps, n)))
  pick = jax.random.categorical(key_pick, log_w, axis=-1)  # (B,)
  out = (x_mean if denoise else x).reshape((b, p) + data_shape)
  return out[jnp.arange(b), pick], n * p
