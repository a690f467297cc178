"""Tests of scorejax.likelihood against the Gaussian-mixture closed forms.

With the exact score (`analytic.marginal_score_fn`) the probability-flow ODE maps
p_eps to p_T exactly, so the model's log-density is known in closed form
(`analytic.flow_model_log_prob`): log p_eps(x) + log pi(z) - log p_T(z). What is
left to test is the ODE solve, the divergence and the bookkeeping.

Tolerances come from measurements at rtol = atol = 1e-5 (float32): the solve error
is <= 1e-4 nats per point in 2-D and <= 6e-4 in 32-D (max over 64 points), so the
bounds below leave a >5x margin while any error in the drift or the divergence
(a factor 1/2, a sign, a missed dimension) moves log p by O(1) nats or more.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scorejax.toy import mixture as analytic
from scorejax import likelihood
from scorejax import sde as sde_lib
from scorejax.sampling.ode_time import get_time_variable

EPS = 1e-5
SDES = {"ve": sde_lib.VESDE(), "vp": sde_lib.VPSDE(), "subvp": sde_lib.subVPSDE(),
        "cosine": sde_lib.CosineVPSDE()}


def _mixture(name: str) -> analytic.GaussianMixture:
  if name == "2d":
    return analytic.imbalanced_mixture_2d()
  return analytic.high_dim_mixture(jax.random.PRNGKey(0), dim=32)


# --- exact score, exact divergence -------------------------------------------------------

@pytest.mark.parametrize("sde_name,mix_name", [
    pytest.param(sde_name, mix_name, id=f"{sde_name}-{mix_name}",
                 marks=[pytest.mark.slow] if mix_name == "32d" and sde_name != "vp" else [])
    for sde_name in ["ve", "vp", "subvp", "cosine"] for mix_name in ["2d", "32d"]])
def test_exact_score_matches_closed_form(sde_name, mix_name):
  sde, mix = SDES[sde_name], _mixture(mix_name)
  n, d = 64, mix.dim
  x = mix.sample(jax.random.PRNGKey(123), n)  # held out: a key used nowhere else
  logp, z, nfe = likelihood.log_likelihood(
      jax.random.PRNGKey(0), sde, analytic.marginal_score_fn(mix, sde), x,
      divergence="exact", eps=EPS)
  assert logp.shape == (n,) and z.shape == x.shape
  assert 0 < int(nfe) < 4096

  # 1. The model's exact log-density, z from the solver ([SDE] Eq. 39).
  model = analytic.flow_model_log_prob(mix, sde, x, z, EPS)
  err = np.abs(np.asarray(logp - model))
  assert err.max() < 2.5e-4 * d, (err.max(), err.mean())

  # 2. z is where the data go: under the exact score it is distributed as p_T,
  #    so its per-dimension second moment is alpha(T)^2 E|x0|^2/D + std(T)^2.
  alpha_t, std_t = sde.marginal_coeffs(jnp.asarray(sde.T))
  m2 = float(jnp.sum(mix.weights * jnp.sum(mix.means**2 + mix.variances, -1))) / d
  want = float(alpha_t**2) * m2 + float(std_t**2)
  got = float(jnp.mean(z**2))
  # sd of the mean of n*d roughly Gaussian squares: sqrt(2/(n d)) * want.
  assert abs(got - want) < 6 * math.sqrt(2 / (n * d)) * want, (got, want)

  # 3. The data density, where the prior mismatch log pi - log p_T is negligible.
  if sde_name != "ve":
    log_p_eps = analytic.marginal_log_prob_fn(mix, sde)(x, jnp.full((n,), EPS))
    per_dim = abs(float(jnp.mean(logp - log_p_eps))) / d
    assert per_dim < 0.005, per_dim


@pytest.mark.parametrize("time_variable", [
    "angle", pytest.param("t", marks=pytest.mark.slow), pytest.param("log_snr", marks=pytest.mark.slow)])
@pytest.mark.parametrize("sde_name", ["ve", pytest.param("cosine", marks=pytest.mark.slow)])
def test_every_time_variable_matches_closed_form(sde_name, time_variable):
  """Each time variable, its state scaling's log-determinant included, gives the
  model's exact log-density ([SDE] Eq. 39) to the solver's accuracy on 32-D data."""
  sde, mix = SDES[sde_name], _mixture("32d")
  x = mix.sample(jax.random.PRNGKey(123), 64)
  logp, z, _ = likelihood.log_likelihood(
      jax.random.PRNGKey(0), sde, analytic.marginal_score_fn(mix, sde), x,
      divergence="exact", eps=EPS, time_variable=time_variable)
  err = np.abs(np.asarray(logp - analytic.flow_model_log_prob(mix, sde, x, z, EPS)))
  assert err.max() < 2.5e-4 * mix.dim, (err.max(), err.mean())


def _flow_model_log_prob_f64(mix, sde, x, z, eps):
  """`analytic.flow_model_log_prob` summed in float64 (numpy): in float32 its terms of
  ~100 nats carry ~1e-5 of rounding each, as much as the solver errors compared here."""
  w, mu, var = (np.asarray(a, np.float64) for a in (mix.weights, mix.means, mix.variances))

  def log_p(y, t):
    alpha, std = (float(v) for v in sde.marginal_coeffs(jnp.float32(t)))
    v = alpha**2 * var + std**2  # (K, D)
    y = np.asarray(y, np.float64)[:, None, :]
    comp = np.log(w) - 0.5 * np.sum((y - alpha * mu) ** 2 / v + np.log(2 * np.pi * v), axis=-1)
    top = comp.max(-1, keepdims=True)
    return (top + np.log(np.exp(comp - top).sum(-1, keepdims=True)))[:, 0]

  z64 = np.asarray(z, np.float64)
  d = z64.shape[-1]
  prior = -0.5 * d * np.log(2 * np.pi * sde.prior_std**2) - 0.5 * np.sum(z64**2, -1) / sde.prior_std**2
  return log_p(x, eps) + prior - log_p(z, sde.T)


@pytest.mark.slow
@pytest.mark.parametrize("sde_name", list(SDES))
def test_angle_likelihood_accuracy_and_cost_48d(sde_name):
  """The default (angle) solve on 48-D data at the default tolerances, against the
  exact model density: measured mean |err| <= 1.7e-4 and worst <= 1.1e-3 nats in
  <= 103 evaluations for every SDE (bench/bench_likelihood.py), bounded here with
  ~2x margin; under VE, where t is a poor variable (157 evaluations), it is both
  cheaper and more accurate than the t solve."""
  sde = SDES[sde_name]
  mix = analytic.high_dim_mixture(jax.random.PRNGKey(42), dim=48)
  x = mix.sample(jax.random.PRNGKey(1), 128)
  score_fn = analytic.marginal_score_fn(mix, sde)
  result = {}
  for tv in ("t", "angle"):
    logp, z, nfe = likelihood.log_likelihood(jax.random.PRNGKey(0), sde, score_fn, x,
                                             divergence="exact", eps=EPS, time_variable=tv)
    err = np.abs(np.asarray(logp, np.float64) - _flow_model_log_prob_f64(mix, sde, x, z, EPS))
    result[tv] = (int(nfe), err.mean(), err.max())
  nfe, mean_err, max_err = result["angle"]
  assert nfe <= 110 and mean_err < 3e-4 and max_err < 2e-3, result
  if sde_name == "ve":
    assert nfe < 0.8 * result["t"][0] and mean_err < result["t"][1] and max_err < result["t"][2], result


# --- Hutchinson estimators --------------------------------------------------------------

@pytest.mark.parametrize("sde_name,mix_name,divergence", [
    ("ve", "2d", "hutchinson_rademacher"),
    pytest.param("ve", "2d", "hutchinson_gaussian", marks=pytest.mark.slow),
    pytest.param("vp", "32d", "hutchinson_rademacher", marks=pytest.mark.slow),
    ("vp", "32d", "hutchinson_gaussian")],
    ids=["ve-2d-hutchinson_rademacher", "ve-2d-hutchinson_gaussian", "vp-32d-hutchinson_rademacher",
         "vp-32d-hutchinson_gaussian"])
def test_hutchinson_is_unbiased(sde_name, mix_name, divergence):
  """Mean over probes = exact divergence integral, within 4 standard errors.

  With E[e e^T] = I and the probe fixed along the trajectory, e^T A e with
  A = int J dt is unbiased for tr A. Its variance for Gaussian probes is
  2 |A_sym|_F^2 >= 2 (tr A)^2 / D (Cauchy-Schwarz on the diagonal), and
  Rademacher probes drop the diagonal term, so they have less.
  """
  sde, mix = SDES[sde_name], _mixture(mix_name)
  d, num_keys = mix.dim, 256
  x = mix.sample(jax.random.PRNGKey(7), 4)
  score_fn = analytic.marginal_score_fn(mix, sde)
  exact, z_exact, _ = likelihood.log_likelihood(jax.random.PRNGKey(0), sde, score_fn, x,
                                                divergence="exact")
  keys = jax.random.split(jax.random.PRNGKey(3), num_keys)
  estimate, _, _ = jax.vmap(
      lambda k: likelihood.log_likelihood(k, sde, score_fn, x, divergence=divergence))(keys)
  estimate, exact = np.asarray(estimate, np.float64), np.asarray(exact, np.float64)
  assert estimate.shape == (num_keys, 4)
  mean, sd = estimate.mean(0), estimate.std(0, ddof=1)
  se = sd / math.sqrt(num_keys)
  assert np.all(np.abs(mean - exact) < 4 * se), (mean - exact, se)

  # The solver integrates the divergence of the ODE in its own state y = x / c(t)
  # (`scorejax.sampling.ode_time`) and adds the scaling's log-determinant
  # D log(c(T) / c(eps)) exactly, so the probe estimates tr A_y = tr A - log_det,
  # where tr A = delta(T) is the divergence integral in x ([SDE] Eq. 39).
  tv = get_time_variable("angle", sde)
  log_det = d * float(tv.log_scale(jnp.float32(sde.T))
                      - tv.log_scale(jnp.float32(likelihood.LIKELIHOOD_EPS)))
  trace_x = exact - np.asarray(sde.prior_logp(z_exact))
  trace_y = trace_x - log_det
  if divergence == "hutchinson_gaussian":
    # Probes really vary, with at least the variance of unit Gaussians for tr A_y (a
    # lower bound, with slack for the sd estimate's own scatter), and not more than
    # the floor of an estimator of tr A in x (the t-form solver's; the exact
    # log-determinant is what makes the difference: sd ~2.5 here against >= 6).
    floor_y = math.sqrt(2 / d) * np.abs(trace_y)
    floor_x = math.sqrt(2 / d) * np.abs(trace_x)
    assert np.all(sd > 0.7 * floor_y), (sd, floor_y)
    assert np.all(sd < floor_x), (sd, floor_x)
  else:
    assert np.all(sd > 0)
    assert np.all(se < 0.25), se


# --- transformations, bookkeeping -----------------------------------------------------------

def test_jit_and_vmap_over_keys():
  sde, mix = SDES["vp"], _mixture("2d")
  score_fn = analytic.marginal_score_fn(mix, sde)
  x = mix.sample(jax.random.PRNGKey(1), 8)
  f = jax.jit(partial(likelihood.log_likelihood, sde=sde, score_fn=score_fn))
  keys = jax.random.split(jax.random.PRNGKey(2), 3)
  logp0, z0, nfe0 = f(keys[0], x=x)  # key and x traced
  assert logp0.shape == (8,) and z0.shape == x.shape and nfe0.shape == ()
  assert np.all(np.isfinite(np.asarray(logp0)))

  logp, z, nfe = jax.jit(jax.vmap(lambda k, x: f(k, x=x), in_axes=(0, None)))(keys, x)
  assert logp.shape == (3, 8) and z.shape == (3,) + x.shape and nfe.shape == (3,)
  # Each lane is its own solve: lane 0 reproduces the unbatched call.
  np.testing.assert_allclose(logp[0], logp0, atol=1e-4)
  assert int(nfe[0]) == int(nfe0)
  # Different probes give different estimates.
  assert float(jnp.max(jnp.abs(logp[1] - logp[0]))) > 0


@pytest.mark.parametrize("solver", ["tsit5", pytest.param("dopri5", marks=pytest.mark.slow)])
def test_nfe_counts_score_evaluations(solver):
  """`nfe` equals the number of score-function calls the solve really makes."""
  sde, mix = SDES["subvp"], _mixture("2d")
  base = analytic.marginal_score_fn(mix, sde)
  calls = []

  def counting_score_fn(x, t):
    jax.debug.callback(lambda: calls.append(1))
    return base(x, t)

  x = mix.sample(jax.random.PRNGKey(1), 8)
  f = jax.jit(partial(likelihood.log_likelihood, sde=sde, score_fn=counting_score_fn,
                      solver=solver, rtol=1e-4, atol=1e-4))
  _, _, nfe = f(jax.random.PRNGKey(2), x=x)
  jax.effects_barrier()
  assert int(nfe) == len(calls) > 10


def test_unknown_names_raise():
  sde, mix = SDES["vp"], _mixture("2d")
  x = jnp.zeros((2, 2))
  with pytest.raises(ValueError, match="hutchinson_rademacher"):
    likelihood.log_likelihood(jax.random.PRNGKey(0), sde, mix.score, x, divergence="trace")
  with pytest.raises(ValueError, match="tsit5"):
    likelihood.log_likelihood(jax.random.PRNGKey(0), sde, mix.score, x, solver="euler")


def test_failed_solve_gives_nan():
  sde, mix = SDES["vp"], _mixture("2d")
  x = mix.sample(jax.random.PRNGKey(1), 2)
  logp, _, _ = likelihood.log_likelihood(
      jax.random.PRNGKey(0), sde, analytic.marginal_score_fn(mix, sde), x, max_steps=3)
  assert np.all(np.isnan(np.asarray(logp)))


# --- bits per dimension ------------------------------------------------------------------

def test_bits_per_dim_formula():
  shape = (4, 4, 3)
  d = 48
  logp = jnp.array([-3.0 * d * math.log(2.0), 0.0])
  np.testing.assert_allclose(likelihood.bits_per_dim(logp, shape), [11.0, 8.0], rtol=1e-6)
  np.testing.assert_allclose(likelihood.bits_per_dim(logp, shape, offset=7.0), [10.0, 7.0],
                             rtol=1e-6)
  assert likelihood.dequantization_offset(1.0) == 8.0
  assert likelihood.dequantization_offset(2.0) == 7.0
  assert likelihood.dequantization_offset(2.0, num_levels=32) == 4.0


def test_bits_per_dim_offset_matches_scaling():
  """bpd(centered, offset 7) = bpd([0, 1], offset 8) = -log2 p(x)/D + 8.

  A mixture on [0, 1]^D and its image under y = 2x - 1 (p_x(x) = 2^D p_y(y)), each
  scored by the real code path (exact score, exact divergence, VP). Per point, the
  model's density carries the prior mismatch log pi(z) - log p_T(z) (here up to
  ~0.005 bits/dim for the uncentered data, whose p_T has mean alpha(T) mu != 0), so
  per-point comparisons with the data density remove it; the dataset mean, which
  is what bits/dim reports, is compared as computed.
  """
  d, n = 4, 32
  rng = np.random.default_rng(0)
  mix_unit = analytic.isotropic_mixture([0.3, 0.7], rng.uniform(0.3, 0.7, (2, d)), 0.08)
  mix_centered = analytic.GaussianMixture(
      mix_unit.weights, 2.0 * mix_unit.means - 1.0, 4.0 * mix_unit.variances)
  x = mix_unit.sample(jax.random.PRNGKey(5), n)
  sde = SDES["vp"]
  log_2 = math.log(2.0)

  def solve(mix, data, offset):
    logp, z, _ = likelihood.log_likelihood(
        jax.random.PRNGKey(0), sde, analytic.marginal_score_fn(mix, sde), data,
        divergence="exact")
    model = analytic.flow_model_log_prob(mix, sde, data, z, EPS)
    mismatch = model - analytic.marginal_log_prob_fn(mix, sde)(data, jnp.full((n,), EPS))
    bpd = lambda lp: np.asarray(likelihood.bits_per_dim(lp, (d,), offset=offset))
    return bpd(logp), bpd(model), bpd(logp - mismatch)

  unit, unit_model, unit_data = solve(mix_unit, x, 8.0)
  centered, centered_model, centered_data = solve(
      mix_centered, 2.0 * x - 1.0, likelihood.dequantization_offset(2.0))
  truth = np.asarray(-mix_unit.log_prob(x) / (d * log_2) + 8.0)

  # The solver against the exact model density, both scalings.
  np.testing.assert_allclose(unit, unit_model, atol=2e-3)
  np.testing.assert_allclose(centered, centered_model, atol=2e-3)
  # Per point, data density: the offset absorbs the 2^D Jacobian exactly.
  np.testing.assert_allclose(centered_data, unit_data, atol=0.01)
  np.testing.assert_allclose(unit_data, truth, atol=0.01)
  np.testing.assert_allclose(centered_data, truth, atol=0.01)
  # Dataset bits/dim as reported.
  assert abs(unit.mean() - truth.mean()) < 0.01, (unit.mean(), truth.mean())
  assert abs(centered.mean() - truth.mean()) < 0.01, (centered.mean(), truth.mean())
