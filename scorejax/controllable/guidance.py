"""Scores of conditional distributions built from an unconditional score.

Every function here maps score functions to a score function `score_fn(x, t)`, so
the result runs through any sampler of `scorejax.sampling` (PC, the probability-flow
ODE, the few-step methods) unchanged.

classifier_guided_score   Bayes' rule for the time-dependent class posterior
                          ([SDE] Song et al. 2021, Eq. 14 and App. I.1; Dhariwal &
                          Nichol 2021, Sec. 4):
                              grad log p_t(x | y) = grad log p_t(x) + grad log p_t(y | x),
                          the second term scaled by `scale` (scale = 1 is exact).
classifier_free_guided_score  Ho & Salimans 2022, Eq. 6:
                              s~(x, t, y) = (1 + w) s(x, t, y) - w s(x, t, none),
                          with w = `scale`; w = 0 is the conditional score itself.
reconstruction_guided_score   the score of p_t(x | known part of x_0 = y) for
                          inpainting, with p_t(y | x) approximated by a Gaussian around
                          Tweedie's denoised estimate (diffusion posterior sampling, Chung
                          et al. 2023; its Gaussian form in Pi-GDM, Song et al. 2023;
                          reconstruction guidance, Ho et al. 2022, "Video diffusion models").
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp

from scorejax import parameterization
from scorejax import sde as sde_lib
from scorejax.sde import batch_broadcast

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]

# The label of classifier-free guidance's unconditional branch (the dropped label).
NULL_LABEL = -1


def classifier_guided_score(score_fn: ScoreFn, log_prob_fn: Callable[[Array, Array], Array],
                            labels: Array, scale: float = 1.0) -> ScoreFn:
  """grad_x log p_t(x) + scale grad_x log p_t(y | x) ([SDE] Eq. 14).

  Args:
    score_fn: the unconditional score, `score_fn(x, t) -> like x`.
    log_prob_fn: `log_prob_fn(x, t) -> (B, C)`, log p_t(c | x) of a noise-conditional
      classifier (per example: row b may depend only on x[b]).
    labels: (B,) int, the class y of each example.
    scale: the guidance scale (Dhariwal & Nichol 2021, Alg. 1); 1 gives the exact
      conditional score when `log_prob_fn` is the exact posterior.

  The class term is jax.grad of sum_b log p_t(labels_b | x_b): the sum's gradient is
  per-example because the classifier treats examples independently. One call of the
  returned function costs one `score_fn` call plus one forward and backward pass of
  the classifier.
  """
  labels = jnp.asarray(labels)

  def guided(x: Array, t: Array) -> Array:
    chex.assert_shape(labels, (x.shape[0],))

    def selected_log_prob(x):
      log_probs = log_prob_fn(x, t)
      chex.assert_shape(log_probs, (x.shape[0], None))
      return jnp.sum(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))

    score = score_fn(x, t)
    chex.assert_equal_shape([score, x])
    return score + scale * jax.grad(selected_log_prob)(x)

  return guided


def classifier_free_guided_score(cond_score_fn: Callable[[Array, Array, Array], Array],
                                 labels: Array, scale: float) -> ScoreFn:
  """(1 + w) s(x, t, y) - w s(x, t, none) with w = `scale` (Ho & Salimans 2022, Eq. 6).

  Args:
    cond_score_fn: `cond_score_fn(x, t, labels) -> like x`, a label-conditional score
      trained with label dropout; the label `NULL_LABEL` (-1) means "no label", i.e.
      the unconditional score.
    labels: (B,) int class labels.
    scale: Ho & Salimans' guidance weight w >= 0. w = 0 is the plain conditional score
      grad log p_t(x | y); w > 0 samples (approximately) from
      p_t(x | y)^(1 + w) / p_t(x)^w, i.e. p_t(x) p_t(y | x)^(1 + w): classifier guidance
      with the implicit classifier at scale 1 + w. (Some codes write the same rule as
      s(none) + g (s(y) - s(none)) with g = 1 + w.)

  Both branches run as one call of `cond_score_fn` on the doubled batch
  (x, x) with labels (labels, -1): one network evaluation per call, on 2B examples.
  """
  labels = jnp.asarray(labels)

  def guided(x: Array, t: Array) -> Array:
    b = x.shape[0]
    chex.assert_shape(labels, (b,))
    both = cond_score_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                         jnp.concatenate([labels, jnp.full_like(labels, NULL_LABEL)]))
    chex.assert_shape(both, (2 * b,) + x.shape[1:])
    cond, uncond = both[:b], both[b:]
    return (1.0 + scale) * cond - scale * uncond

  return guided


def tweedie_variance(alpha: Array, sigma: Array, data_var: float | Array = 1.0) -> Array:
  """r_t^2 = data_var sigma^2 / (alpha^2 data_var + sigma^2): the variance of x_0 given x_t
  under a N(0, data_var I) prior, used as the spread of p(x_0 | x_t) around Tweedie's
  estimate (Pi-GDM, Song et al. 2023, with data_var = 1); -> sigma^2 / alpha^2 as t -> 0."""
  return data_var * sigma**2 / (alpha**2 * data_var + sigma**2)


def step_floored_variance(sde: sde_lib.SDE, x: Array, t: Array, data_var: float | Array = 1.0,
                          n_steps: int | None = None) -> Array:
  """r_t^2 (B,) of `tweedie_variance`, floored at G^2 / alpha^2 for an `n_steps` grid.

  Near t = 0 reconstruction guidance is stiff: in a coordinate the guidance sees exactly,
  one reverse-diffusion step moves x0_hat by G^2 / (alpha^2 r_t^2) times its residual,
  G^2 = g^2 dt the step's noise variance (`sde.discretize` on the uniform n-step grid).
  That factor exceeds 1 (overshoot) and then 2 (divergence) once a step is longer than t
  itself (for VP, G^2 / (alpha^2 r_t^2) ~ dt / t). Flooring r_t^2 at G^2 / alpha^2, the
  variance of x_0 that the step's own fresh noise leaves, keeps every step at most a full
  correction. It changes exactly the steps whose gain would exceed 1: the last ones, and
  the early ones where alpha is small or the step long next to sigma, where the guidance
  is weak anyway (on a 200-step grid 64 of the steps for VE, 96 for VP, 98 for sub-VP).
  n_steps None: no floor.
  """
  alpha, sigma = sde.marginal_coeffs(t)
  r2 = tweedie_variance(alpha, sigma, data_var)
  if n_steps is not None:
    _, g = sde.discretize(x, t, int(n_steps))
    r2 = jnp.maximum(r2, jnp.square(g) / jnp.square(alpha))
  return r2


def tweedie_vjp(sde: sde_lib.SDE, score_fn: ScoreFn, x: Array,
                t: Array) -> tuple[Array, Array, Callable[[Array], Array]]:
  """(score, x0_hat, vjp): s(x, t), Tweedie's x0_hat = (x + sigma^2 s) / alpha and
  v -> J^T v with J = d x0_hat / dx, from one `score_fn` evaluation.

  The pull-back every reconstruction-guided method shares: grad_x of any function
  of x0_hat(x) is J^T times its gradient in x0_hat.
  """
  alpha, sigma = sde.marginal_coeffs(t)
  alpha, sigma = batch_broadcast(alpha, x), batch_broadcast(sigma, x)

  def x0_hat(x):
    score = score_fn(x, t)
    chex.assert_equal_shape([score, x])
    return parameterization.x0_from_score(x, score, alpha, sigma), score

  x0, vjp_fn, score = jax.vjp(x0_hat, x, has_aux=True)
  return score, x0, lambda v: vjp_fn(v)[0]


def reconstruction_guidance(sde: sde_lib.SDE, score_fn: ScoreFn, y: Array, known: Array,
                            x: Array, t: Array, *, data_var: float = 1.0,
                            n_steps: int | None = None) -> tuple[Array, Array]:
  """(score, guidance): s(x, t) and the inpainting term grad log p_t(y | x) on the unknown part.

  By Bayes, grad log p_t(x | y) = grad log p_t(x) + grad log p_t(y | x). With
  p(x_0 | x_t) replaced by N(x0_hat(x_t), r_t^2 I) around Tweedie's estimate
  x0_hat = (x + sigma^2 s(x, t)) / alpha, p_t(y | x) = N(y; M x0_hat(x), r_t^2 I) with M
  the projection on the known coordinates, and

      grad log p_t(y | x) = J^T M (y - x0_hat(x)) / r_t^2,   J = d x0_hat / dx

  (the likelihood approximation of diffusion posterior sampling, Chung et al. 2023, in
  the Gaussian form of Pi-GDM, Song et al. 2023; Ho et al. 2022's reconstruction
  guidance is the same gradient with a hand-set weight). r_t^2 is the posterior
  variance under a N(0, data_var I) prior, data_var sigma^2 / (alpha^2 data_var + sigma^2)
  (Pi-GDM's choice for data_var = 1), exact for Gaussian data of that variance and
  -> sigma^2 / alpha^2 as t -> 0; with `n_steps` (the sampler's uniform grid) it is floored
  where a step is too long for the stiff term (`step_floored_variance`). The term is
  returned only where x is unknown (zero where known, the part a sampler imposes itself).

  Costs one `score_fn` evaluation and one vector-Jacobian product through it.
  """
  r2 = batch_broadcast(step_floored_variance(sde, x, t, data_var, n_steps), x)
  score, x0, vjp = tweedie_vjp(sde, score_fn, x, t)
  pull = vjp(jnp.where(known, y - x0, 0.0) / r2)
  return score, jnp.where(known, 0.0, pull)


def reconstruction_guided_score(sde: sde_lib.SDE, score_fn: ScoreFn, y: Array, known: Array,
                                *, scale: float = 1.0, data_var: float = 1.0,
                                n_steps: int | None = None) -> ScoreFn:
  """s(x, t) + scale grad log p_t(y | x): the inpainting score of `reconstruction_guidance`.

  y: the data (B, ...), known: boolean, broadcastable to y, True where y is known.
  scale = 1 uses the Gaussian approximation as it stands; larger values strengthen it.
  n_steps: the uniform grid of the sampler it runs in, which floors r_t^2
  (`step_floored_variance`); None for no floor.
  """
  def guided(x: Array, t: Array) -> Array:
    score, guidance = reconstruction_guidance(sde, score_fn, y, known, x, t, data_var=data_var,
                                              n_steps=n_steps)
    return score + scale * guidance

  return guided
