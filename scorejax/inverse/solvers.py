"""Solvers of y = A x + noise_std n with a score-based prior: samples of p(x | y).

    x, nfe = solve_inverse_problem(key, sde, score_fn, y, A, shape, method="projection",
                                   noise_std=0.0, **options)

`A` is any operator of `scorejax.inverse.operators` (forward, adjoint, pinv); `score_fn`
the unconditional score of x (trained, or a mixture's exact one). Every method runs for
every SDE of `scorejax.sde` through its schedule (alpha, sigma) alone.

projection  Song, Shen, Xing & Ermon 2022 ("Solving inverse problems in medical imaging
            with score-based generative models", Sec. 3): the PC sampler, and after every
            predictor and corrector step the state x_t is merged with a re-noised
            measurement y_t = alpha(t) y + sigma(t) A z in measurement space,

                x <- x + lam A^+ (y_t - A x),

            lam in [0, 1] (lam = 1: hard consistency, A x = y_t). With A = P(Lambda) T
            (T orthogonal) this is their T^{-1}[lam Lambda y_t + (1 - lam) Lambda T x +
            (1 - Lambda) T x]; for a general A it is the same merge in the SVD basis of A,
            and for the Radon transform the pseudo-inverse solves least squares (they
            use the full-angle FBP as T^{-1}). A last merge with y itself follows the final
            denoising step. Options: lam, and the PC sampler's (predictor, corrector,
            snr, n_corrector_steps, n_steps, eps) or sampler= a single-step few-step
            method. The measured coordinates are imposed but never steer the rest: where
            a few measured numbers decide the mode it often settles in the wrong one.
dps         diffusion posterior sampling (Chung, Kim, McCann, Klasky & Ye 2023, Alg. 1):
            each reverse-diffusion step is followed by a gradient step on the Tweedie
            estimate's residual,

                x_{i-1} <- x'_{i-1} - zeta_i grad_{x_i} ||y - A x0_hat(x_i)||^2,
                zeta_i = step_size / ||y - A x0_hat(x_i)||     (their step-size rule),

            per example. Options: step_size (zeta', default 1), predictor (any predictor;
            reverse_diffusion by default: DDPM ancestral sampling for VP, as in the paper,
            is 'ancestral'), n_steps, eps. One score evaluation and one VJP per step.
pigdm       the score of p_t(x | y) with p(x_0 | x_t) replaced by N(x0_hat, r_t^2 I), so
            that p_t(y | x_t) = N(y; A x0_hat, r_t^2 A A^T + noise_std^2 I) and

                grad log p_t(y | x) = J^T A^T (r_t^2 A A^T + noise_std^2 I)^{-1} (y - A x0_hat)

            (pseudoinverse-guided diffusion, Pi-GDM, Song, Vahdat, Mardani & Kautz 2023,
            for noisy linear measurements; r_t^2 from `guidance.step_floored_variance`), added to
            the score and sampled with the PC sampler (any predictor and corrector: the
            conditional score is a plain score_fn). It weighs the measurement by its
            uncertainty at each noise level, where DPS's normalized step does not; r_t^2 is
            floored where a grid step is too long for the stiff term (see
            `measurement_guided_score`). Options:
            scale (1: the approximation as it stands), data_var, final_lam (a last merge
            of the output with y, as projection's; 0: none), and the PC sampler's.

The mask operator's version of the last two is inpainting's reconstruction guidance
(`scorejax.controllable.guidance`), with which they share `tweedie_vjp`; the projection
method runs on the same constrained PC loop as inpainting's replacement
(`scorejax.controllable.replacement.pc_with_constraint`).

Measured agreement with the exact posterior of a Gaussian-mixture prior: docs/inverse.md
(bench/bench_inverse.py).
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp

from scorejax import sde as sde_lib
from scorejax.controllable.guidance import step_floored_variance, tweedie_vjp
from scorejax.controllable.replacement import (SINGLE_STEP_SAMPLERS, check_eps,
                                               few_step_with_constraint, pc_with_constraint)
from scorejax.inverse.operators import LinearOperator
from scorejax.sampling.pc import pc_sample
from scorejax.sampling.predictors import get_predictor
from scorejax.sampling.schedules import SAMPLING_EPS, uniform_steps, uniform_time_grid
from scorejax.sde import batch_broadcast

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


def _per_example_norm(r: Array) -> Array:
  """(B,) Euclidean norm of each example's (real or complex) measurement."""
  return jnp.sqrt(jnp.sum(jnp.abs(r.reshape(r.shape[0], -1)) ** 2, axis=-1))


def merge(A: LinearOperator, x: Array, y_t: Array, lam: float | Array) -> Array:
  """x + lam A^+ (y_t - A x): Song et al. 2022's measurement-space merge (lam = 1: A x = y_t)."""
  return x + lam * A.pinv(y_t - A.forward(x)).astype(x.dtype)


def noised_measurement(key: Array, sde: sde_lib.SDE, A: LinearOperator, y: Array, t: Array,
                       shape: tuple[int, ...]) -> Array:
  """y_t = alpha(t) y + sigma(t) A z, z ~ N(0, I) shaped like x: a draw of A x_t given
  A x_0 = y under the forward kernel (Song et al. 2022)."""
  alpha, sigma = sde.marginal_coeffs(t)
  z = jax.random.normal(key, shape, jnp.real(y).dtype)
  return batch_broadcast(alpha, y) * y + batch_broadcast(sigma, y) * A.forward(z)


def projection(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, y: Array, A: LinearOperator,
               shape: tuple[int, ...], noise_std: float = 0.0, *, lam: float = 1.0,
               sampler: str = "pc", **options) -> tuple[Array, int]:
  """Song, Shen, Xing & Ermon 2022's measurement-consistent sampler (module docstring)."""
  del noise_std  # the merge treats y as exact; lam < 1 keeps part of the sample's own A x
  if not 0.0 <= float(lam) <= 1.0:
    raise ValueError(f"lam={lam} must lie in [0, 1]")
  constrain = lambda k, x, t: merge(A, x, noised_measurement(k, sde, A, y, t, shape), lam)
  if sampler == "pc":
    x, nfe = pc_with_constraint(key, sde, score_fn, shape, constrain, **options)
  elif sampler in SINGLE_STEP_SAMPLERS:
    x, nfe = few_step_with_constraint(key, sde, score_fn, shape, constrain, sampler=sampler,
                                      **options)
  else:
    raise ValueError(f"sampler={sampler!r} is not 'pc' or one of {list(SINGLE_STEP_SAMPLERS)}")
  return merge(A, x, y, lam), nfe


def dps(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, y: Array, A: LinearOperator,
        shape: tuple[int, ...], noise_std: float = 0.0, *, step_size: float = 1.0,
        predictor: str = "reverse_diffusion", n_steps: int | None = None,
        eps: float = SAMPLING_EPS) -> tuple[Array, int]:
  """Diffusion posterior sampling (Chung et al. 2023, Alg. 1; module docstring)."""
  del noise_std  # DPS's step-size rule does not use it
  check_eps(sde, eps)
  n = uniform_steps(sde, n_steps)
  predictor_fn = get_predictor(predictor)

  def step(carry, inputs):
    x, _ = carry
    t_i, k = inputs
    t = jnp.full((shape[0],), t_i, x.dtype)
    score, x0, vjp = tweedie_vjp(sde, score_fn, x, t)
    residual = y - A.forward(x0)
    # grad_x ||y - A x0_hat||^2 = -2 J^T A^T (y - A x0_hat)
    grad = -2.0 * vjp(A.adjoint(residual).astype(x.dtype))
    zeta = step_size / jnp.maximum(_per_example_norm(residual), 1e-12)
    pull = batch_broadcast(zeta, x) * grad
    # The predictor evaluates the score at (x, t) only: hand it the one computed above.
    x_new, x_mean = predictor_fn(k, sde, lambda *_: score, x, t, n)
    return (x_new - pull, x_mean - pull), None

  key_init, key_steps = jax.random.split(key)
  x_T = sde.prior_sampling(key_init, shape)
  inputs = (uniform_time_grid(sde.T, eps, n), jax.random.split(key_steps, n))
  (_, x_mean), _ = jax.lax.scan(step, (x_T, x_T), inputs)
  return x_mean, n


def measurement_guided_score(sde: sde_lib.SDE, score_fn: ScoreFn, y: Array, A: LinearOperator,
                             noise_std: float = 0.0, *, scale: float = 1.0, data_var: float = 1.0,
                             n_steps: int | None = None) -> ScoreFn:
  """s(x, t) + scale J^T A^T (r_t^2 A A^T + noise_std^2 I)^{-1} (y - A x0_hat(x, t)).

  The Gaussian approximation of grad log p_t(y | x) (Pi-GDM; module docstring), with
  A^T (r^2 A A^T + s^2 I)^{-1} = A.pinv(., s^2 / r^2) / r^2. One call costs one score
  evaluation and one VJP through it.

  n_steps: the sampler's grid (uniform in t, as the PC sampler's). Near t = 0 the term is
  stiff; with n_steps given r_t^2 is floored so that no step overshoots
  (`guidance.step_floored_variance`, which says which steps it changes).
  """
  def guided(x: Array, t: Array) -> Array:
    r2 = step_floored_variance(sde, x, t, data_var, n_steps)  # (B,)
    score, x0, vjp = tweedie_vjp(sde, score_fn, x, t)
    residual = y - A.forward(x0)
    pulled = A.pinv(residual, noise_std**2 / r2)
    chex.assert_equal_shape([pulled, x])
    return score + scale * vjp(pulled.astype(x.dtype) / batch_broadcast(r2, x))

  return guided


def pigdm(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, y: Array, A: LinearOperator,
          shape: tuple[int, ...], noise_std: float = 0.0, *, scale: float = 1.0,
          data_var: float = 1.0, final_lam: float = 0.0, **pc_options) -> tuple[Array, int]:
  """PC sampling of the measurement-guided score (module docstring)."""
  guided = measurement_guided_score(sde, score_fn, y, A, noise_std, scale=scale, data_var=data_var,
                                    n_steps=uniform_steps(sde, pc_options.get("n_steps")))
  x, nfe = pc_sample(key, sde, guided, shape, **pc_options)
  if final_lam:
    x = merge(A, x, y, final_lam)
  return x, nfe


_METHODS = {"projection": projection, "dps": dps, "pigdm": pigdm}
INVERSE_METHODS = tuple(_METHODS)


def solve_inverse_problem(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, y: Array,
                          A: LinearOperator, shape: tuple[int, ...], *,
                          method: str = "projection", noise_std: float = 0.0,
                          **options) -> tuple[Array, int]:
  """Samples x (shape, batch first) of p(x | y) for y = A x + noise_std n (module docstring).

  Args:
    key: PRNG key.
    sde: the SDE the score belongs to.
    score_fn: `score_fn(x, t) -> like x`, the unconditional score.
    y: measurements (B, ...), as `A.forward` returns them.
    A: the operator (`scorejax.inverse.operators`).
    shape: (B, *data_shape) of x.
    method: a name in `INVERSE_METHODS`.
    noise_std: the measurement noise's standard deviation (per real number).
    options: the method's settings and eps (see each method).

  Returns:
    (x, nfe): samples shaped `shape` and the score evaluations per sample (for dps and
    pigdm each one also takes a vector-Jacobian product through the score).
  """
  if method not in _METHODS:
    raise ValueError(f"method={method!r} is not one of {list(INVERSE_METHODS)}")
  shape = tuple(int(s) for s in shape)
  if len(shape) < 2:
    raise ValueError(f"shape must be (B, *data_shape); got {shape}")
  if y.shape[0] != shape[0]:
    raise ValueError(f"y has {y.shape[0]} examples but shape asks for {shape[0]}")
  expected = jax.eval_shape(A.forward, jax.ShapeDtypeStruct(shape, jnp.float32))
  if tuple(expected.shape) != tuple(y.shape):
    raise ValueError(f"y has shape {tuple(y.shape)}, but A maps x of shape {shape} to "
                     f"{tuple(expected.shape)}")
  if float(noise_std) < 0:
    raise ValueError(f"noise_std={noise_std} must be >= 0")
  return _METHODS[method](key, sde, score_fn, y, A, shape, noise_std, **options)
