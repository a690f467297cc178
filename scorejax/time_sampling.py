"""Times t of the continuous losses and the likelihood bound: uniform or importance-sampled.

[MLE] Song, Durkan, Murray & Ermon, "Maximum Likelihood Training of Score-Based
Diffusion Models", NeurIPS 2021, Sec. 5 ("variance reduction").

With likelihood weighting lambda(t) = g(t)^2 ([MLE] Thm. 1) the DSM integrand
g^2 ||s + z / sigma||^2 grows like g^2 / sigma^2 as t -> 0 (the target -z / sigma is
unbounded), and t ~ U(eps, T) gives a loss whose variance is dominated by the few
draws near eps. [MLE] draws t with density proportional to g(t)^2 / sigma(t)^2
instead and divides by that density, which turns the integrand into the bounded
noise-prediction error ||sigma s + z||^2 times a constant.

The schedule view makes that density closed-form for every SDE of `scorejax.sde`:
with alpha, sigma and the half log-SNR lambda(t) = log(alpha / sigma),
g^2 = d sigma^2/dt - 2 f sigma^2 and f = d log alpha / dt give

    g(t)^2 / sigma(t)^2 = d log sigma^2 / dt - 2 d log alpha / dt = -2 d lambda / dt,

so the normalizer and the CDF on [eps, T] are

    Z = int_eps^T g^2 / sigma^2 dt = 2 (lambda(eps) - lambda(T)),
    F(t) = (lambda(eps) - lambda(t)) / (lambda(eps) - lambda(T)),

and F is inverted by the SDE's closed-form `t_of_log_snr`:
t = t_of_log_snr(lambda(eps) - u (lambda(eps) - lambda(T))) for u ~ U(0, 1). (For VE,
lambda is linear in t and the density is uniform; for VP it is [MLE]'s closed form.)

An estimate with t ~ q and weight 1 / ((T - eps) q(t)) has the expectation of the
same estimate with t ~ U(eps, T), for any integrand: `sample_times` returns both.
`uniforms` draws the u's i.i.d., stratified (one per stratum [i/n, (i+1)/n)) or
antithetic (u and 1 - u), the latter two for lower-variance means over a batch.
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from scorejax import sde as sde_lib

Array = jax.Array


# --- u ~ U(0, 1): i.i.d., stratified or antithetic ------------------------------------

def _iid(key: Array, n: int) -> Array:
  return jax.random.uniform(key, (n,))


def _stratified(key: Array, n: int) -> Array:
  """u_i = (i + U_i) / n: one draw in each of n equal strata (each u_i is still U(0, 1)
  marginally if the strata are taken in random order, which `uniforms` does)."""
  k_jitter, k_perm = jax.random.split(key)
  u = (jnp.arange(n) + jax.random.uniform(k_jitter, (n,))) / n
  return jax.random.permutation(k_perm, u)


def _antithetic(key: Array, n: int) -> Array:
  """Pairs (u, 1 - u); for odd n the last draw is unpaired."""
  half = jax.random.uniform(key, ((n + 1) // 2,))
  return jnp.concatenate([half, 1.0 - half])[:n]


# name -> u-sampler (key, n) -> (n,) values in [0, 1), each marginally U(0, 1).
TIME_SAMPLINGS: Mapping[str, Callable[[Array, int], Array]] = {
    "iid": _iid, "stratified": _stratified, "antithetic": _antithetic,
}


def uniforms(key: Array, n: int, method: str = "iid") -> Array:
  """(n,) draws of U(0, 1): i.i.d., stratified or antithetic (`TIME_SAMPLINGS`).

  Each draw is marginally U(0, 1), so a mean of a function of them is unbiased; the
  stratified and antithetic draws are negatively correlated, which lowers the
  variance of the mean of a monotone function (Owen, "Monte Carlo theory, methods
  and examples", Ch. 8 and 10).
  """
  if method not in TIME_SAMPLINGS:
    raise ValueError(f"time sampling {method!r} is not one of {sorted(TIME_SAMPLINGS)}")
  return TIME_SAMPLINGS[method](key, n)


# --- the density g^2 / sigma^2 on [eps, T] --------------------------------------------

def likelihood_weight_normalizer(sde: sde_lib.SDE, eps: float) -> Array:
  """Z = int_eps^T g(t)^2 / sigma(t)^2 dt = 2 (lambda(eps) - lambda(T)) (module docstring)."""
  return 2.0 * (sde.log_snr(jnp.asarray(eps, jnp.float32))
                - sde.log_snr(jnp.asarray(sde.T, jnp.float32)))


def importance_density(sde: sde_lib.SDE, t: Array, eps: float) -> Array:
  """q(t) = g(t)^2 / (sigma(t)^2 Z) on [eps, T] ([MLE] Sec. 5)."""
  return sde.g2(t) / jnp.square(sde.sigma(t)) / likelihood_weight_normalizer(sde, eps)


def importance_cdf(sde: sde_lib.SDE, t: Array, eps: float) -> Array:
  """F(t) = (lambda(eps) - lambda(t)) / (lambda(eps) - lambda(T)), the CDF of q on [eps, T]."""
  lam_eps = sde.log_snr(jnp.asarray(eps, jnp.float32))
  lam_T = sde.log_snr(jnp.asarray(sde.T, jnp.float32))
  return (lam_eps - sde.log_snr(t)) / (lam_eps - lam_T)


def importance_times(sde: sde_lib.SDE, u: Array, eps: float) -> Array:
  """F^{-1}(u): t = t_of_log_snr(lambda(eps) - u (lambda(eps) - lambda(T))), in [eps, T]."""
  lam_eps = sde.log_snr(jnp.asarray(eps, jnp.float32))
  lam_T = sde.log_snr(jnp.asarray(sde.T, jnp.float32))
  t = sde.t_of_log_snr(lam_eps - u * (lam_eps - lam_T))
  return jnp.clip(t, eps, sde.T)  # rounding of the closed forms near the ends


def importance_weights(sde: sde_lib.SDE, t: Array, eps: float) -> Array:
  """1 / ((T - eps) q(t)) = Z sigma^2 / ((T - eps) g^2): the weight that makes a mean over
  t ~ q estimate the mean over t ~ U(eps, T)."""
  z = likelihood_weight_normalizer(sde, eps)
  return z * jnp.square(sde.sigma(t)) / (sde.g2(t) * (sde.T - eps))


def sample_times(key: Array, sde: sde_lib.SDE, n: int, *, eps: float,
                 importance_weighting: bool = False, method: str = "iid"
                 ) -> tuple[Array, Array]:
  """(t, w), both (n,): times in [eps, T] and the weights of an unbiased mean.

  Without `importance_weighting`, t ~ U(eps, T) and w = 1 (for `method="iid"` exactly
  `jax.random.uniform(key, (n,), minval=eps, maxval=T)`, the draw of score_sde's losses).
  With it, t ~ q(t) ∝ g(t)^2 / sigma(t)^2 by inverting the closed-form CDF and
  w = 1 / ((T - eps) q(t)), so that E[w h(t)] = E_{t ~ U(eps, T)}[h(t)] for any h.
  """
  if method == "iid" and not importance_weighting:
    return jax.random.uniform(key, (n,), minval=eps, maxval=sde.T), jnp.ones((n,))
  u = uniforms(key, n, method)
  if not importance_weighting:
    return eps + (sde.T - eps) * u, jnp.ones((n,))
  t = importance_times(sde, u, eps)
  return t, importance_weights(sde, t, eps)


__all__ = ["TIME_SAMPLINGS", "uniforms", "likelihood_weight_normalizer", "importance_density",
           "importance_cdf", "importance_times", "importance_weights", "sample_times"]
