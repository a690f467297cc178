"""Samplers that impose a known part of x_0 on their state: score_sde's inpainting loop.

The loops themselves (`pc_with_constraint`, `few_step_with_constraint`) take any
constraint `constrain(key, x, t) -> x` applied between steps; inpainting's is `impose`,
the measurement-consistent merge of `scorejax.inverse` (Song, Shen, Xing & Ermon 2022)
is another.

At every time t of the reverse process, the known coordinates of the state are
replaced by a fresh draw of the forward kernel at t given the data, alpha(t) y +
sigma(t) z ([SDE] Song et al. 2021, App. I.2, "imputation"), and the sampler's
step moves the rest. Two defects of score_sde's `get_pc_inpainter` are fixed here:

* it started from y + prior noise, i.e. clean data in the known part at t = T (a
  state at no single noise level); here the whole state starts from the prior and
  the known part is at once replaced by its draw at t = T, so every step sees a
  state consistent with its time;
* its last "denoised" output kept the noisy unknown part (x_mean was built from x);
  here the unknown part of the result is the last predictor step's mean (PC) or the
  Tweedie estimate (few-step, `denoise=True`), and the known part is y itself.

The known part is re-drawn before every corrector and every predictor step, at the
time that step starts from, so the state's two parts always share one noise level.

Samplers: "pc" (the predictor-corrector loop of `scorejax.sampling.pc`, any
predictor and corrector) and the single-step few-step methods of
`scorejax.sampling.few_step` (euler, ddim, heun, dpm_solver_2, dpm_solver_3), run one
grid step at a time so the known part can be imposed between steps. The multistep
methods (DPM-Solver++(2M/3M), UniPC, iPNDM) are not offered: their history of model
evaluations would mix states before and after the replacement.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from scorejax import sde as sde_lib
from scorejax.sampling.correctors import get_corrector
from scorejax.sampling.denoise import tweedie_denoise
from scorejax.sampling.few_step import FEW_STEP_METHODS
from scorejax.sampling.few_step.grid import Grid, Model
from scorejax.sampling.predictors import get_predictor
from scorejax.sampling.schedules import SAMPLING_EPS, time_steps, uniform_steps, uniform_time_grid
from scorejax.sde import batch_broadcast

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]
# constrain(key, x, t) -> x: what a constrained sampler applies to its state before each step.
Constrain = Callable[[Array, Array, Array], Array]

# Few-step methods whose step depends only on the current state (no history).
SINGLE_STEP_SAMPLERS = ("euler", "ddim", "heun", "dpm_solver_2", "dpm_solver_3")
SAMPLERS = ("pc",) + SINGLE_STEP_SAMPLERS


def _is_set(name: str | None) -> bool:
  return name is not None and name.lower() != "none"


def check_eps(sde: sde_lib.SDE, eps: float) -> None:
  if not 0.0 < float(eps) < float(sde.T):
    raise ValueError(f"eps={eps} must lie in (0, T={sde.T})")


def impose(key: Array, sde: sde_lib.SDE, x: Array, y: Array, known: Array, t: Array) -> Array:
  """x with its known part replaced by a draw of p_{0t}(. | y) = N(alpha(t) y, sigma(t)^2 I)."""
  alpha, sigma = sde.marginal_coeffs(t)
  z = jax.random.normal(key, y.shape, y.dtype)
  return jnp.where(known, batch_broadcast(alpha, y) * y + batch_broadcast(sigma, y) * z, x)


def pc_with_constraint(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, shape: tuple[int, ...],
                       constrain: Constrain, *, dtype=jnp.float32,
                       predictor: str | None = "reverse_diffusion",
                       corrector: str | None = "langevin", snr: float = 0.16,
                       n_corrector_steps: int = 1, n_steps: int | None = None,
                       eps: float = SAMPLING_EPS, denoise: bool = True) -> tuple[Array, int]:
  """The PC sampler ([SDE] Alg. 1) with `constrain(key, x, t)` applied before every
  corrector and every predictor step, at the time t (B,) that step starts from.

  Same grid, steps and nfe as `scorejax.sampling.pc_sample`. Inpainting's constraint
  re-draws the known part (`impose`); the inverse-problem solvers merge a re-noised
  measurement (`scorejax.inverse`). Returns (x, nfe), x the last predictor step's mean
  with `denoise` (the constraint not applied after it).
  """
  check_eps(sde, eps)
  if not (_is_set(predictor) or _is_set(corrector)):
    raise ValueError("a constrained sampler needs a predictor or a corrector (both are None)")
  n = uniform_steps(sde, n_steps)
  predictor_fn, corrector_fn = get_predictor(predictor), get_corrector(corrector)
  batch = shape[0]

  def step(carry, inputs):
    x, _ = carry
    t_i, k = inputs
    k_corr, k_pred, k_known1, k_known2 = jax.random.split(k, 4)
    t = jnp.full((batch,), t_i, dtype)
    x = constrain(k_known1, x, t)
    if _is_set(corrector):
      x, _ = corrector_fn(k_corr, sde, score_fn, x, t, n, snr, n_corrector_steps)
      x = constrain(k_known2, x, t)
    x, x_mean = predictor_fn(k_pred, sde, score_fn, x, t, n)
    return (x, x_mean), None

  key_init, key_steps = jax.random.split(key)
  x_T = sde.prior_sampling(key_init, shape).astype(dtype)
  inputs = (uniform_time_grid(sde.T, eps, n), jax.random.split(key_steps, n))
  (x, x_mean), _ = jax.lax.scan(step, (x_T, x_T), inputs)
  nfe = n * (int(_is_set(predictor)) + n_corrector_steps * int(_is_set(corrector)))
  return (x_mean if denoise else x), nfe


def pc_with_replacement(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, y: Array, known: Array,
                        **options) -> tuple[Array, int]:
  """`pc_with_constraint` with the known part re-drawn (`impose`) before every step.

  `known` is a boolean array shaped like y; `options` as `pc_with_constraint`'s. Returns
  (x, nfe); x's known part is not yet set to y.
  """
  constrain = lambda k, x, t: impose(k, sde, x, y, known, t)
  return pc_with_constraint(key, sde, score_fn, y.shape, constrain, dtype=y.dtype, **options)


def few_step_with_constraint(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn,
                             shape: tuple[int, ...], constrain: Constrain, *, sampler: str,
                             dtype=jnp.float32, n_steps: int = 50, schedule: str | None = None,
                             eps: float | None = None, denoise: bool = True,
                             **options) -> tuple[Array, int]:
  """A single-step few-step method, one grid step at a time, `constrain(key, x, t)` before each.

  `sampler` in `SINGLE_STEP_SAMPLERS`; schedule, eps and `options` (ddim's eta, heun's
  s_churn, ...) as `scorejax.sampling.few_step_sample`'s. With `denoise`, a final
  Tweedie step at eps (one more evaluation). Returns (x, nfe).
  """
  if sampler not in SINGLE_STEP_SAMPLERS:
    raise ValueError(f"sampler={sampler!r} cannot impose a constraint between its steps; "
                     f"choose one of {list(SAMPLERS)}")
  spec = FEW_STEP_METHODS[sampler]
  schedule = spec.schedule if schedule is None else schedule
  eps = SAMPLING_EPS if eps is None else float(eps)
  check_eps(sde, eps)
  grid = Grid.of(sde, time_steps(sde, n_steps, schedule, eps))
  # Step i's own two-point grid (t_i, t_{i+1}): leaves (n_steps, 2), scanned over.
  pairs = jax.tree.map(lambda a: jnp.stack([a[:-1], a[1:]], axis=1), grid)
  model = Model(sde, score_fn)
  batch = shape[0]
  per_step = []

  def step(x, inputs):
    pair, k = inputs
    k_known, k_step = jax.random.split(k)
    x = constrain(k_known, x, jnp.full((batch,), pair.t[0], dtype))
    x, nfe = spec.fn(k_step, model, pair, x, **options)
    per_step.append(nfe)  # a Python int, fixed by the method
    return x, None

  key_init, key_steps = jax.random.split(key)
  x_T = sde.prior_sampling(key_init, shape).astype(dtype)
  x, _ = jax.lax.scan(step, x_T, (pairs, jax.random.split(key_steps, n_steps)))
  nfe = n_steps * per_step[0]
  if denoise:
    x = tweedie_denoise(sde, score_fn, x, eps)
    nfe += 1
  return x, nfe


def few_step_with_replacement(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, y: Array,
                              known: Array, *, sampler: str, **options) -> tuple[Array, int]:
  """`few_step_with_constraint` with the known part re-drawn (`impose`) before every step."""
  constrain = lambda k, x, t: impose(k, sde, x, y, known, t)
  return few_step_with_constraint(key, sde, score_fn, y.shape, constrain, sampler=sampler,
                                  dtype=y.dtype, **options)


def sample_with_replacement(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, y: Array,
                            known: Array, *, sampler: str = "pc", **options) -> tuple[Array, int]:
  """`pc_with_replacement` (sampler="pc") or `few_step_with_replacement`."""
  if sampler == "pc":
    return pc_with_replacement(key, sde, score_fn, y, known, **options)
  return few_step_with_replacement(key, sde, score_fn, y, known, sampler=sampler, **options)
