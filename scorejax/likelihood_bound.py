"""The variational bound on -log p(x) of a score-based diffusion model, in nats and bits/dim.

References:
  [MLE] Song, Durkan, Murray & Ermon, "Maximum Likelihood Training of Score-Based
        Diffusion Models", NeurIPS 2021.
  [VDM] Kingma, Salimans, Poole & Ho, "Variational Diffusion Models", NeurIPS 2021.
  [SDE] Song et al., "Score-Based Generative Modeling through Stochastic Differential
        Equations", ICLR 2021.

The model: z ~ pi at t = T, the reverse-time SDE with the score s(x, t) down to t = eps
([SDE] Eq. 6), then a Gaussian decoder for the last stretch [0, eps]. For data x and the
kernel x_t = alpha(t) x + sigma(t) z, its negative log-likelihood is bounded by

    -log p(x) <= L(x) = L_prior(x) + L_diffusion(x) + L_reconstruction(x),

    L_prior = KL(N(alpha_T x, sigma_T^2 I) || pi)                             (closed form)
    L_diffusion = 1/2 int_eps^T g(t)^2 E_z || s(x_t, t) + z / sigma(t) ||^2 dt
    L_reconstruction = E_z[-log N(x; x0_hat(x_eps), (sigma_eps / alpha_eps)^2 I)],
        x0_hat(x_eps) = (x_eps + sigma_eps^2 s(x_eps, eps)) / alpha_eps   (Tweedie),
        = D/2 log(2 pi sigma_eps^2 / alpha_eps^2) + 1/2 E_z || sigma_eps s(x_eps, eps) + z ||^2.

This is [MLE] Thm. 1 (the DSM form of L_theta^SM, their Eq. 8-9): its terms
-E log pi(x_T) and 1/2 int (-g^2 ||grad log p_0t||^2 - 2 div f) dt are, for the affine
SDEs here, -E log pi(x_T) - D/2 log(sigma_T^2 / sigma_eps^2), which with the decoder's
entropy correction for the truncation at eps (their App. "likelihood offset", Jensen's
inequality on [0, eps]) add up to the KL and reconstruction terms above. The same bound
is [VDM]'s continuous-time ELBO (their Eq. 17 with L_inf = -1/2 int SNR'(t) E||x - x0_hat||^2):
with SNR = alpha^2 / sigma^2 and g^2 = d sigma^2/dt - 2 f sigma^2, -SNR'(t) sigma^4 / alpha^2
= g^2, so the two integrands agree term by term.

L_diffusion is estimated by Monte Carlo with `n_t` times per example. With
`importance_weighting` (the default) the times are drawn with density
q(t) ∝ g^2 / sigma^2 (`scorejax.time_sampling`, [MLE] Sec. 5), which turns the
integrand into Z/2 ||sigma s + z||^2 (bounded); `time_sampling="stratified"` (the default)
puts one time in each of `n_t` equal-probability strata. Every estimate is unbiased,
so means over examples converge to the mean bound.

Shapes: x is (B, *data_shape); every result is (B,).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from scorejax import checks
from scorejax import sde as sde_lib
from scorejax import time_sampling as time_sampling_lib

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]

# The bound's time floor: where the decoder takes over (score_flow's 1e-5, as the ODE's).
BOUND_EPS = 1e-5
# Times per example of the Monte-Carlo estimate of L_diffusion (score_flow's N = 1000).
BOUND_N_T = 1000


def _sum_per_example(v: Array) -> Array:
  return jnp.sum(v.reshape(v.shape[0], -1), axis=-1)


def prior_term(sde: sde_lib.SDE, x: Array) -> Array:
  """KL(N(alpha_T x, sigma_T^2 I) || N(0, prior_std^2 I)) per example, nats (closed form)."""
  d = math.prod(x.shape[1:])
  alpha_T, sigma_T = sde.marginal_coeffs(jnp.asarray(sde.T, x.dtype))
  ratio = jnp.square(sigma_T / sde.prior_std)
  mean_sq = jnp.square(alpha_T) * _sum_per_example(jnp.square(x)) / sde.prior_std**2
  return 0.5 * (mean_sq + d * (ratio - 1.0 - jnp.log(ratio)))


def _residuals(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array, t: Array) -> Array:
  """||sigma(t) s(x_t, t) + z||^2 per example at each row of times t (n, B): (n, B).

  One score evaluation of the batch per row (a `lax.scan`), z drawn afresh for each.
  """
  def one_row(_, inputs):
    t_i, i = inputs
    z = jax.random.normal(jax.random.fold_in(key, i), x.shape, x.dtype)
    mean, std = sde.marginal_prob(x, t_i)
    std_b = sde_lib.batch_broadcast(std, x)
    return None, _sum_per_example(jnp.square(std_b * score_fn(mean + std_b * z, t_i) + z))

  _, r = jax.lax.scan(one_row, None, (t, jnp.arange(t.shape[0])))
  return r


def reconstruction_term(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array,
                        eps: float) -> Array:
  """-log N(x; x0_hat(x_eps), (sigma_eps / alpha_eps)^2 I) at one draw x_eps, nats (B,).

  The Gaussian decoder of [MLE]'s truncation term, with Tweedie's mean (module docstring):
  x - x0_hat = -sigma (z + sigma s) / alpha, so the value is
  D/2 log(2 pi sigma^2 / alpha^2) + 1/2 ||sigma s(x_eps, eps) + z||^2.
  """
  t = jnp.full((1, x.shape[0]), eps, x.dtype)
  return _reconstruction_from_residual(sde, x, eps, _residuals(key, sde, score_fn, x, t)[0])


def _reconstruction_from_residual(sde: sde_lib.SDE, x: Array, eps: float, r: Array) -> Array:
  d = math.prod(x.shape[1:])
  alpha, sigma = sde.marginal_coeffs(jnp.asarray(eps, x.dtype))
  return 0.5 * d * jnp.log(2.0 * math.pi * jnp.square(sigma / alpha)) + 0.5 * r


def _times(key: Array, sde: sde_lib.SDE, b: int, *, n_t: int, eps: float,
           importance_weighting: bool, time_sampling: str) -> tuple[Array, Array]:
  """(t, c), both (n_t, B): each example's own n_t times (stratified over n_t if asked) and
  the factor c(t) with 1/2 int g^2 E||s + z/sigma||^2 dt = E[c(t) ||sigma s + z||^2]:
  Z/2 for t ~ q ∝ g^2/sigma^2 ([MLE] Sec. 5), (T - eps)/2 g^2/sigma^2 for t ~ U(eps, T)."""
  u = jax.vmap(lambda k: time_sampling_lib.uniforms(k, n_t, time_sampling))(
      jax.random.split(key, b)).T
  if importance_weighting:
    t = time_sampling_lib.importance_times(sde, u, eps)
    c = jnp.full_like(t, 0.5) * time_sampling_lib.likelihood_weight_normalizer(sde, eps)
  else:
    t = eps + (sde.T - eps) * u
    c = 0.5 * (sde.T - eps) * sde.g2(t) / jnp.square(sde.sigma(t))
  return t, c


def _mean_and_stderr(v: Array) -> tuple[Array, Array]:
  """Mean over axis 0 and its standard error as for i.i.d. draws."""
  n = v.shape[0]
  mean = jnp.mean(v, axis=0, keepdims=True)
  var = jnp.sum(jnp.square(v - mean), axis=0) / max(n - 1, 1)
  return mean[0], jnp.sqrt(var / n)


def diffusion_term(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array, *, n_t: int,
                   eps: float, importance_weighting: bool = True,
                   time_sampling: str = "stratified") -> tuple[Array, Array]:
  """Monte-Carlo estimate of 1/2 int_eps^T g^2 E||s(x_t, t) + z/sigma||^2 dt, nats, and its
  standard error, each (B,): `n_t` times per example, one score evaluation of the batch each.

  Per time t_i: c(t_i) ||sigma s + z||^2 with c = Z/2 under importance weighting
  (Z = 2 (lambda(eps) - lambda(T)), [MLE] Sec. 5) and (T - eps)/2 g^2/sigma^2 for uniform
  t. The standard error is that of i.i.d. draws (conservative for stratified ones).
  """
  k_t, k_z = jax.random.split(key)
  t, c = _times(k_t, sde, x.shape[0], n_t=n_t, eps=eps,
                importance_weighting=importance_weighting, time_sampling=time_sampling)
  return _mean_and_stderr(c * _residuals(k_z, sde, score_fn, x, t))


def elbo_terms(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array, *,
               n_t: int = BOUND_N_T, eps: float = BOUND_EPS, importance_weighting: bool = True,
               time_sampling: str = "stratified") -> dict[str, Array]:
  """The bound's terms in nats, each (B,): 'prior', 'diffusion', 'reconstruction', their
  sum 'total' (>= -log p(x) in expectation), and 'diffusion_stderr' (the Monte-Carlo
  standard error of 'diffusion'). See the module docstring for the formulas."""
  if jnp.ndim(x) < 2:
    raise ValueError(f"elbo: expected x of shape (B, *data_shape), got {jnp.shape(x)}")
  if int(n_t) < 1:
    raise ValueError(f"elbo: n_t={n_t} must be at least 1 (times per example)")
  if time_sampling not in time_sampling_lib.TIME_SAMPLINGS:
    raise ValueError(f"elbo: time_sampling={time_sampling!r} is not one of "
                     f"{sorted(time_sampling_lib.TIME_SAMPLINGS)}")
  checks.check_time_floor(eps, sde.T, where="elbo", default=BOUND_EPS)
  x = jnp.asarray(x)
  dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
  checks.check_score_shape(score_fn, x.shape, dtype, where="elbo")
  x = x.astype(dtype)
  k_t, k_z = jax.random.split(key)
  t, c = _times(k_t, sde, x.shape[0], n_t=int(n_t), eps=eps,
                importance_weighting=importance_weighting, time_sampling=time_sampling)
  # One scan over the n_t times and, last, t = eps for the reconstruction term: the
  # score function appears once in the program.
  r = _residuals(k_z, sde, score_fn, x, jnp.concatenate([t, jnp.full_like(t[:1], eps)]))
  diffusion, stderr = _mean_and_stderr(c * r[:-1])
  rec = _reconstruction_from_residual(sde, x, eps, r[-1])
  prior = prior_term(sde, x)
  return {"prior": prior, "diffusion": diffusion, "reconstruction": rec,
          "total": prior + diffusion + rec, "diffusion_stderr": stderr}


def elbo_nats(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array, *,
              n_t: int = BOUND_N_T, eps: float = BOUND_EPS, importance_weighting: bool = True,
              time_sampling: str = "stratified") -> Array:
  """(B,) the variational bound on -log p(x) in nats ([MLE] Thm. 1; module docstring)."""
  return elbo_terms(key, sde, score_fn, x, n_t=n_t, eps=eps,
                    importance_weighting=importance_weighting,
                    time_sampling=time_sampling)["total"]


def elbo_bits_per_dim(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array, *,
                      n_t: int = BOUND_N_T, offset: float = 8.0, eps: float = BOUND_EPS,
                      importance_weighting: bool = True,
                      time_sampling: str = "stratified") -> Array:
  """(B,) the bound in bits/dim: L(x) / (D ln 2) + offset, >= the model's exact bits/dim.

  The convention of `scorejax.likelihood.bits_per_dim`: `offset` 8 for 256-level data the
  model sees in [0, 1], 7 in [-1, 1], 0 for continuous data; x is already in the
  model's scale (and dequantized). `n_t` times per example estimate the diffusion term
  (one score evaluation of the batch each, plus one for the reconstruction term).
  """
  d = math.prod(jnp.shape(x)[1:])
  nats = elbo_nats(key, sde, score_fn, x, n_t=n_t, eps=eps,
                   importance_weighting=importance_weighting, time_sampling=time_sampling)
  return nats / (d * math.log(2.0)) + offset


__all__ = ["BOUND_EPS", "BOUND_N_T", "prior_term", "reconstruction_term", "diffusion_term",
           "elbo_terms", "elbo_nats", "elbo_bits_per_dim"]
