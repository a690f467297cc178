"""The variational bound on -log p(x) (scorejax/likelihood_bound.py; Song, Durkan, Murray &
Ermon 2021, Thm. 1) against the exact densities of Gaussian mixtures.

With the exact score the bound is tight up to the prior mismatch KL(p_T || pi) and the
Gaussian decoder on [0, eps], both negligible here, so its mean over data drawn from the
mixture must lie above the mean of -log p(x) by no more than Monte-Carlo error (it may
not lie below by more) and, on a 48-D mixture, by at most 0.05 bits/dim for VP and
sub-VP; and it must not lie below the probability-flow ODE's value (which with the exact
score is -log p(x) up to the solver's tolerance). Measured (256 points, n_t = 1000,
stratified importance-sampled times): mean gap bound - (-log2 p / D) within ~0.01
bits/dim of 0 with standard error ~0.01 for VP and sub-VP; a per-example Monte-Carlo
standard error of ~0.25 bits/dim (i.i.d. formula; the stratified draws do better).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scorejax import likelihood
from scorejax import sde as sde_lib
from scorejax.toy import mixture


def _gaps(sde, dim: int, n: int, n_t: int, *, ode: bool = False, seed: int = 0):
  """Per-example bits/dim of bound - (-log p) (and ODE - (-log p)) on n mixture samples,
  and the bound's terms (nats)."""
  mix = mixture.high_dim_mixture(jax.random.key(seed), dim=dim)
  x = mix.sample(jax.random.key(seed + 1), n)
  score_fn = mixture.marginal_score_fn(mix, sde)
  true = np.asarray(likelihood.bits_per_dim(mix.log_prob(x), (dim,), offset=0.0))
  terms = jax.jit(lambda k: likelihood.elbo_terms(k, sde, score_fn, x, n_t=n_t))(
      jax.random.key(seed + 2))
  bound = np.asarray(terms["total"]) / (dim * math.log(2))
  out = {"bound": bound - true, "terms": terms, "x": x}
  if ode:
    logp, _, _ = jax.jit(lambda k: likelihood.log_likelihood(
        k, sde, score_fn, x, rtol=1e-4, atol=1e-4, divergence="hutchinson_rademacher"))(
            jax.random.key(seed + 3))
    out["ode"] = np.asarray(likelihood.bits_per_dim(logp, (dim,), offset=0.0)) - true
    bpd = jax.jit(lambda k: likelihood.elbo_bits_per_dim(k, sde, score_fn, x, n_t=n_t, offset=7.0))(
        jax.random.key(seed + 2))
    np.testing.assert_allclose(bpd, bound + 7.0, rtol=1e-5)  # the bits/dim convention
  return out


def _mean_se(v: np.ndarray) -> tuple[float, float]:
  return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


def test_bound_is_above_the_true_density_and_tight_vp_small():
  """8-D VP: the mean bound is >= the data's -log2 p / D within 4 standard errors, and
  tight; its terms add up, and the prior term is the closed-form KL. (One jit: the fast
  tier pays one compilation.)"""
  sde = sde_lib.VPSDE()
  mix = mixture.high_dim_mixture(jax.random.key(0), dim=8)
  score_fn = mixture.marginal_score_fn(mix, sde)

  @jax.jit
  def run(key):
    k_x, k_bound = jax.random.split(key)
    x = mix.sample(k_x, 128)
    terms = likelihood.elbo_terms(k_bound, sde, score_fn, x, n_t=200)
    alpha, sigma = sde.marginal_coeffs(jnp.asarray(sde.T))
    kl = 0.5 * (alpha**2 * jnp.sum(x**2, -1) + 8 * (sigma**2 - 1 - jnp.log(sigma**2)))
    return terms, mix.log_prob(x), kl

  terms, logp, kl = run(jax.random.key(1))
  gap, se = _mean_se((np.asarray(terms["total"]) + np.asarray(logp)) / (8 * math.log(2)))
  assert -4 * se < gap < 0.05 + 4 * se, (gap, se)
  np.testing.assert_allclose(terms["total"],
                             terms["prior"] + terms["diffusion"] + terms["reconstruction"],
                             rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(terms["prior"], kl, rtol=1e-4, atol=1e-6)
  assert np.all(np.asarray(terms["diffusion_stderr"]) > 0)


def test_bound_refuses_bad_arguments():
  sde = sde_lib.VPSDE()
  x = jnp.zeros((2, 3))
  score_fn = lambda y, t: -y  # noqa: E731
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="n_t"):
    likelihood.elbo_bits_per_dim(key, sde, score_fn, x, n_t=0)
  with pytest.raises(ValueError, match="eps"):
    likelihood.elbo_bits_per_dim(key, sde, score_fn, x, eps=0.0)
  with pytest.raises(ValueError, match="time_sampling"):
    likelihood.elbo_terms(key, sde, score_fn, x, time_sampling="sobol")
  with pytest.raises(ValueError, match="shaped like x|shape"):
    likelihood.elbo_terms(key, sde, lambda y, t: y[:, :1], x)


@pytest.mark.slow  # two 48-D bounds with 1000 times and two ODE solves: ~30-60 s
@pytest.mark.parametrize("name", ["vp", "subvp"])
def test_bound_is_tight_on_a_48d_mixture_and_above_the_ode(name):
  """48-D: mean gap to the true -log2 p / D in [-4 se, 0.05] bits/dim, and the bound is
  >= the ODE likelihood's bits/dim (paired, within 4 standard errors)."""
  sde = {"vp": sde_lib.VPSDE(), "subvp": sde_lib.subVPSDE()}[name]
  gaps = _gaps(sde, 48, 256, 1000, ode=True, seed=10)
  gap, se = _mean_se(gaps["bound"])
  print(f"{name}: bound - true = {gap:.4f} ± {se:.4f} bits/dim; "
        f"ODE - true = {gaps['ode'].mean():.5f}")
  assert -4 * se < gap <= 0.05, (gap, se)
  diff, se_diff = _mean_se(gaps["bound"] - gaps["ode"])
  assert diff > -4 * se_diff, (diff, se_diff)
  assert abs(gaps["ode"].mean()) < 0.01  # the ODE with the exact score is the data's density
