"""The predictor–corrector sampler (Song et al. 2021, Alg. 1; App. G)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from scorejax import checks
from scorejax import sde as sde_lib
from scorejax.sampling.correctors import get_corrector_step
from scorejax.sampling.predictors import get_predictor
from scorejax.sampling.schedules import SAMPLING_EPS, uniform_steps, uniform_time_grid

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


def _is_set(name: str | None) -> bool:
  return name is not None and name.lower() != "none"


def _pc_parts(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, shape: tuple[int, ...], *,
              predictor, corrector, snr, n_corrector_steps, n_steps, eps, where="pc_sample",
              x_T=None):
  """(number of levels n, sub-steps per level, sub-step function, x_T, per-sub-step
  inputs, denoised, nfe) shared by the PC samplers.

  Each noise level is `n_corrector_steps` corrector sub-steps then one predictor
  sub-step, all run by one `lax.scan` whose body evaluates `score_fn` once and applies
  the corrector's or the predictor's update to it: the network appears once in the
  compiled loop instead of once per kind of step, which halves its compile time. The
  random draws are those of corrector-then-predictor steps: level i's key splits into
  (corrector, predictor) keys and the corrector's into one key per step.
  `denoised(x, x_mean)`: what a finished level leaves as its noise-free state.

  Checks the arguments first (names, step count, eps in (0, T), the score's shape).
  x_T: the starting points (default: drawn from the prior with the first half of `key`).
  """
  predictor_fn = get_predictor(predictor)
  has_predictor, has_corrector = _is_set(predictor), _is_set(corrector)
  corrector_step = get_corrector_step(corrector) if has_corrector else None
  if not (has_predictor or has_corrector):
    raise ValueError(f"{where} needs a predictor or a corrector (both are None); set "
                     "predictor='reverse_diffusion' or corrector='langevin'")
  n = uniform_steps(sde, n_steps)
  if n < 1:
    raise ValueError(f"{where}: n_steps={n_steps!r} must be >= 1 (or None for sde.N)")
  checks.check_time_floor(eps, sde.T, where=where, default=SAMPLING_EPS)
  checks.check_score_shape(score_fn, shape, checks.default_float_dtype(), where=where)

  n_corr = n_corrector_steps if has_corrector else 0
  n_sub = n_corr + int(has_predictor)

  def predict(k, score, x, t):
    return predictor_fn(k, sde, lambda x_, t_: score, x, t, n)  # evaluates it once, at (x, t)

  def correct(k, score, x, t):
    return corrector_step(k, sde, score, x, t, n, snr)

  def step(carry, inputs):
    x, _ = carry
    t_i, k, kind = inputs  # kind: 0..n_corr - 1 corrector steps, n_corr the predictor
    t = jnp.full((shape[0],), t_i, x.dtype)
    score = score_fn(x, t)
    if not has_corrector:
      return predict(k, score, x, t), None
    if not has_predictor:
      return correct(k, score, x, t), None
    return jax.lax.cond(kind == n_corr, predict, correct, k, score, x, t), None

  key_init, key_steps = jax.random.split(key)
  if x_T is None:
    x_T = sde.prior_sampling(key_init, shape)
  elif tuple(x_T.shape) != tuple(shape):
    raise ValueError(f"{where}: x_T has shape {tuple(x_T.shape)}, expected {tuple(shape)}")
  level_keys = jax.vmap(jax.random.split)(jax.random.split(key_steps, n))  # (n, 2)
  sub_keys = level_keys[:, 1:]  # the predictor's
  if has_corrector:
    corrector_keys = jax.vmap(lambda k: jax.random.split(k, n_corrector_steps))(level_keys[:, 0])
    sub_keys = jnp.concatenate([corrector_keys, sub_keys], axis=1) if has_predictor else corrector_keys
  inputs = (jnp.repeat(uniform_time_grid(sde.T, eps, n), n_sub), sub_keys.reshape(n * n_sub),
            jnp.tile(jnp.arange(n_sub), n))

  def denoised(x, x_mean):  # without a predictor, a level ends on the corrector's noisy x
    return x_mean if has_predictor else x

  nfe = n * (int(has_predictor) + n_corrector_steps * int(has_corrector))
  return n, n_sub, step, x_T, inputs, denoised, nfe


def pc_sample(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, shape: tuple[int, ...], *,
              predictor: str | None = "reverse_diffusion", corrector: str | None = "langevin",
              snr: float = 0.16, n_corrector_steps: int = 1, n_steps: int | None = None,
              eps: float = SAMPLING_EPS, denoise: bool = True) -> tuple[Array, int]:
  """Samples `shape` (batch included) by alternating corrector and predictor steps.

  Time runs over n = `n_steps` (default `sde.N`) points linspace(T, eps, n); at each,
  `n_corrector_steps` corrector steps, then one predictor step, all inside one
  `lax.scan`. With `denoise`, the last predictor step's noise is left out (its
  mean is returned), as in the reference "noise removal".

  Returns (samples, nfe) with nfe the score evaluations per sample.

  Raises ValueError, before sampling, for an unknown predictor or corrector (listing
  the valid ones), eps outside (0, sde.T), or a score_fn whose output is not shaped
  like x.
  """
  _, _, step, x_T, inputs, denoised, nfe = _pc_parts(
      key, sde, score_fn, shape, predictor=predictor, corrector=corrector, snr=snr,
      n_corrector_steps=n_corrector_steps, n_steps=n_steps, eps=eps)
  (x, x_mean), _ = jax.lax.scan(step, (x_T, x_T), inputs)
  return (denoised(x, x_mean) if denoise else x), nfe


def pc_trajectory(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, shape: tuple[int, ...], *,
                  n_frames: int = 10, predictor: str | None = "reverse_diffusion",
                  corrector: str | None = "langevin", snr: float = 0.16,
                  n_corrector_steps: int = 1, n_steps: int | None = None,
                  eps: float = SAMPLING_EPS, x_T: Array | None = None) -> tuple[Array, Array]:
  """The PC sampler's path: (frames (n_frames + 1, *shape), their times (n_frames + 1,)).

  Frame 0 is x_T; frame j the denoised state after j N / n_frames steps, so the last
  frame is `pc_sample`'s output with the same key. N must be a multiple of `n_frames`.
  `x_T`: the starting points (shaped `shape`), e.g. to follow the SDE and the
  probability-flow ODE (`ode_trajectory`) from the same prior draws; default: the prior
  sample `pc_sample` would start from.
  """
  n, n_sub, step, x_T, inputs, denoised, _ = _pc_parts(
      key, sde, score_fn, shape, predictor=predictor, corrector=corrector, snr=snr,
      n_corrector_steps=n_corrector_steps, n_steps=n_steps, eps=eps, where="pc_trajectory",
      x_T=x_T)
  if n % n_frames:
    raise ValueError(f"the number of steps ({n}) must be a multiple of n_frames={n_frames}")
  chunk = n // n_frames

  def run_chunk(carry, inputs):
    carry, _ = jax.lax.scan(step, carry, inputs)
    return carry, denoised(*carry)

  chunked = jax.tree.map(lambda a: a.reshape((n_frames, chunk * n_sub) + a.shape[1:]), inputs)
  _, frames = jax.lax.scan(run_chunk, (x_T, x_T), chunked)
  ts = uniform_time_grid(sde.T, eps, n)
  frame_times = jnp.concatenate([jnp.array([sde.T]), ts.reshape(n_frames, chunk)[:, -1]])
  return jnp.concatenate([x_T[None], frames]), frame_times
