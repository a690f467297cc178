"""SDE coefficients, marginals, priors and discretizations against closed forms."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import integrate, stats

from scorejax.toy import mixture as analytic
from scorejax import sde as sde_lib

SDES = {
    "ve": sde_lib.VESDE(),
    "vp": sde_lib.VPSDE(),
    "subvp": sde_lib.subVPSDE(),
    "cosine": sde_lib.CosineVPSDE(),
}


@pytest.mark.parametrize("name", list(SDES))
def test_marginals_solve_the_moment_odes(name):
  """alpha(t), std(t) solve m' = f m and v' = 2 f v + g^2, the moment ODEs of dx = f x dt + g dw."""
  sde = SDES[name]
  v0 = sde.sigma_min**2 if name == "ve" else 0.0  # VE's marginal std is sigma(t), so v(0) = sigma_min^2

  # One compiled call per right-hand side evaluation (the float32 coefficients, as before),
  # instead of dispatching every JAX operation of f and g one by one.
  coeffs = jax.jit(lambda t: (sde.drift_coeff(t), sde.diffusion_coeff(t)))

  def rhs(t, y):
    f, g = (float(v) for v in coeffs(np.float32(t)))
    return [f * y[0], 2 * f * y[1] + g**2]

  ts = np.array([0.05, 0.3, 0.7, 1.0]) * sde.T
  sol = integrate.solve_ivp(rhs, (0.0, sde.T), [1.0, v0], t_eval=ts, rtol=1e-10, atol=1e-12)
  alpha, std = sde.marginal_coeffs(jnp.asarray(ts, jnp.float32))
  np.testing.assert_allclose(alpha, sol.y[0], rtol=1e-4)
  np.testing.assert_allclose(std, np.sqrt(sol.y[1]), rtol=1e-4)


def test_closed_forms():
  t = jnp.array([0.0, 0.25, 1.0])
  ve, vp, subvp = SDES["ve"], SDES["vp"], SDES["subvp"]
  np.testing.assert_allclose(ve.marginal_coeffs(t)[1], 0.01 * 5000.0**np.array(t), rtol=1e-5)
  lmc = -0.25 * np.array(t)**2 * 19.9 - 0.5 * np.array(t) * 0.1
  np.testing.assert_allclose(vp.marginal_coeffs(t)[0], np.exp(lmc), rtol=1e-6)
  np.testing.assert_allclose(vp.marginal_coeffs(t)[1], np.sqrt(1 - np.exp(2 * lmc)), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(subvp.marginal_coeffs(t)[1], 1 - np.exp(2 * lmc), rtol=1e-5, atol=1e-7)
  x0 = jnp.ones((3, 4, 4, 1))
  mean, std = vp.marginal_prob(x0, t)
  assert mean.shape == x0.shape and std.shape == (3,)
  np.testing.assert_allclose(mean[:, 0, 0, 0], np.exp(lmc), rtol=1e-6)


@pytest.mark.parametrize("name", list(SDES))
def test_prior_logp_equals_scipy(name):
  sde = SDES[name]
  z = sde.prior_sampling(jax.random.key(0), (5, 3, 2))
  want = stats.multivariate_normal(np.zeros(6), sde.prior_std**2 * np.eye(6)).logpdf(
      np.asarray(z).reshape(5, 6))
  np.testing.assert_allclose(sde.prior_logp(z), want, rtol=1e-5)
  assert float(jnp.std(z)) == pytest.approx(sde.prior_std, rel=0.3)


def test_discretizations_reproduce_ddpm_and_ncsn():
  # DDPM (Ho et al. 2020, Sec. 4): beta_1 = 1e-4 to beta_T = 0.02, T = 1000, linear.
  np.testing.assert_allclose(SDES["vp"].discrete_betas, np.linspace(1e-4, 0.02, 1000), rtol=1e-5)
  # NCSN (Song & Ermon 2019, Sec. 5): L = 10 geometric levels from 1 to 0.01.
  np.testing.assert_allclose(sde_lib.ncsn_sigmas(0.01, 1.0, 10), 10.0 ** -(np.arange(10) * 2 / 9),
                             rtol=1e-10)
  # The VE table is the same ladder, increasing: sigma_i = sigma(i / (N - 1)).
  ve = SDES["ve"]
  i = np.array([0, 1, 500, 999])
  np.testing.assert_allclose(ve.discrete_sigmas[i], ve.sigma(jnp.asarray(i / 999.0)), rtol=1e-4)
  np.testing.assert_allclose(ve.discrete_sigmas[::-1], sde_lib.ncsn_sigmas(0.01, 50.0, 1000), rtol=1e-5)


def _simulate_chain(sde, x0, key, n_steps, time_of_step):
  """Runs x <- x + f + G z over the forward discretization; returns x after each step."""
  def step(x, inputs):
    i, k = inputs
    t = jnp.full((x.shape[0],), time_of_step(i))
    f, g = sde.discretize(x, t)
    x = x + f + g[:, None] * jax.random.normal(k, x.shape)
    return x, x
  _, xs = jax.lax.scan(step, x0, (jnp.arange(n_steps), jax.random.split(key, n_steps)))
  return xs


@pytest.mark.parametrize("name", list(SDES))
def test_forward_chain_matches_marginals(name):
  """Monte-Carlo simulation of the discretized forward chain has the closed-form marginals."""
  sde = SDES[name]
  n = 20000
  x0 = jnp.full((n, 1), 1.5)
  if name == "subvp":  # Euler-Maruyama on t_i = i / N
    xs = jax.jit(lambda k: _simulate_chain(sde, x0, k, sde.N, lambda i: i / sde.N))(jax.random.key(0))
    t_after = (np.arange(sde.N) + 1) / sde.N
    rtol = 0.02
  elif name == "cosine":  # exact kernel steps over [i T / N, (i + 1) T / N]
    xs = jax.jit(lambda k: _simulate_chain(sde, x0, k, sde.N, lambda i: (i + 1) * sde.T / sde.N))(
        jax.random.key(0))
    t_after = (np.arange(sde.N) + 1) * sde.T / sde.N
    rtol = 0.02
  else:  # SMLD / DDPM chains: step i sits at t_i = i / (N - 1)
    xs = jax.jit(lambda k: _simulate_chain(sde, x0, k, sde.N, lambda i: i / (sde.N - 1)))(jax.random.key(0))
    t_after = np.arange(sde.N) / (sde.N - 1)
    rtol = 0.02
  for i in [99, 499, 999]:
    mean, std = sde.marginal_prob(x0[:1], jnp.array([t_after[i]], jnp.float32))
    emp_mean = float(jnp.mean(xs[i]))
    emp_std = float(jnp.std(xs[i]))
    se_mean = float(std[0]) / math.sqrt(n)
    assert abs(emp_mean - float(mean[0, 0])) < 4 * se_mean + 0.01 * abs(float(mean[0, 0])), (i, emp_mean, mean)
    assert emp_std == pytest.approx(float(std[0]), rel=rtol + 4 / math.sqrt(2 * n)), (i, emp_std, std)


@pytest.mark.parametrize("name", list(SDES))
def test_reverse_sde_and_probability_flow(name):
  sde = SDES[name]
  mix = analytic.imbalanced_mixture_2d()
  score_fn = analytic.marginal_score_fn(mix, sde)
  x = mix.sample(jax.random.key(1), 8)
  t = jnp.linspace(0.1, 0.9, 8)
  f, g = sde.sde(x, t)
  s = score_fn(x, t)
  rev_f, rev_g = sde.reverse(score_fn).sde(x, t)
  np.testing.assert_allclose(rev_f, f - g[:, None]**2 * s, rtol=1e-6)
  np.testing.assert_allclose(rev_g, g)
  ode_f, ode_g = sde.reverse(score_fn, probability_flow=True).sde(x, t)
  np.testing.assert_allclose(ode_f, f - 0.5 * g[:, None]**2 * s, rtol=1e-6)
  np.testing.assert_allclose(ode_g, 0.0)
  df, dg = sde.discretize(x, t)
  rdf, rdg = sde.reverse(score_fn).discretize(x, t)
  np.testing.assert_allclose(rdf, df - dg[:, None]**2 * s, rtol=1e-6)
  np.testing.assert_allclose(rdg, dg)


@pytest.mark.parametrize("name", list(SDES))
def test_probability_flow_preserves_marginals(name):
  """The Fokker–Planck equation holds for the mixture marginals: d/dt log p_t = -div(f~) - f~ . grad log p_t.

  With the exact score the probability-flow drift f~ transports p_t, so the continuity
  equation checked pointwise by finite differences in t validates drift, diffusion,
  marginals and score together.
  """
  sde = SDES[name]
  mix = analytic.imbalanced_mixture_2d()
  score_fn = analytic.marginal_score_fn(mix, sde)
  log_p = analytic.marginal_log_prob_fn(mix, sde)
  drift = lambda x, t: sde.reverse(score_fn, probability_flow=True).sde(x, t)[0]
  x = mix.sample(jax.random.key(2), 6) * 1.3

  @jax.jit  # one compilation for both times instead of op-by-op dispatch
  def both_sides(t):
    dlogp_dt = jax.vmap(jax.grad(lambda ti, xi: log_p(xi[None], ti[None])[0]))(t, x)
    div = jax.vmap(lambda xi, ti: jnp.trace(jax.jacfwd(lambda y: drift(y[None], ti[None])[0])(xi)))(x, t)
    return dlogp_dt, -div - jnp.sum(drift(x, t) * score_fn(x, t), axis=-1)

  for t0 in [0.2, 0.6]:
    dlogp_dt, rhs = both_sides(jnp.full((6,), t0))
    np.testing.assert_allclose(dlogp_dt, rhs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(SDES))
def test_public_functions_jit(name):
  sde = SDES[name]
  x = jnp.ones((4, 3))
  t = jnp.full((4,), 0.5)
  score_fn = lambda x, t: -x
  for fn in [sde.sde, sde.marginal_prob, sde.discretize, sde.reverse(score_fn).sde,
             sde.reverse(score_fn, True).discretize]:
    a = jax.jit(fn)(x, t)
    b = fn(x, t)
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-6), a, b)
  np.testing.assert_allclose(jax.jit(sde.prior_logp)(x), sde.prior_logp(x), rtol=1e-6)
  assert sde.prior_logp(x).shape == (4,)
  z = jax.jit(sde.prior_sampling, static_argnums=1)(jax.random.key(0), (2, 3))
  assert z.shape == (2, 3)
  np.testing.assert_allclose(z, sde.prior_sampling(jax.random.key(0), (2, 3)), rtol=1e-6)
  assert float(jnp.std(z - sde.prior_sampling(jax.random.key(1), (2, 3)))) > 0  # keys matter


def test_sde_from_config():
  config = ml_collections.ConfigDict({
      "training": {"sde": "vpsde"},
      "model": {"sigma_min": 0.01, "sigma_max": 50.0, "beta_min": 0.1, "beta_max": 20.0,
                "num_scales": 1000}})
  assert sde_lib.sde_from_config(config) == sde_lib.VPSDE()
  config.training.sde = "vesde"
  assert sde_lib.sde_from_config(config) == sde_lib.VESDE()
  config.training.sde = "cosinevpsde"
  assert sde_lib.sde_from_config(config) == sde_lib.CosineVPSDE()
  config.training.sde = "nope"
  with pytest.raises(ValueError, match="training.sde"):
    sde_lib.sde_from_config(config)


def test_bad_shapes_are_reported():
  with pytest.raises(ValueError, match=r"t of shape \(B,\)"):
    SDES["vp"].marginal_prob(jnp.ones((4, 2)), jnp.ones((3,)))


# --- the schedule view --------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SDES))
def test_schedule_identities(name):
  """f = d log alpha / dt, g^2 = d sigma^2/dt - 2 f sigma^2, lambda = log(alpha / sigma),
  and t(lambda) inverts lambda(t) (Kingma et al. 2021, Eqs. 1-2 and App. A), by autodiff."""
  sde = SDES[name]
  t = jnp.linspace(0.02, sde.T, 9)
  d_log_alpha = jax.vmap(jax.grad(lambda u: jnp.log(sde.alpha(u))))(t)
  d_var = jax.vmap(jax.grad(lambda u: jnp.square(sde.sigma(u))))(t)
  alpha, sigma = sde.marginal_coeffs(t)
  np.testing.assert_allclose(sde.alpha(t), alpha, rtol=1e-6)
  np.testing.assert_allclose(sde.sigma(t), sigma, rtol=1e-6)
  np.testing.assert_allclose(sde.drift_coeff(t), d_log_alpha, rtol=1e-4, atol=1e-5)
  g2 = d_var - 2 * sde.drift_coeff(t) * sigma**2
  np.testing.assert_allclose(sde.g2(t), g2, rtol=2e-3)
  np.testing.assert_allclose(sde.g2(t), sde.diffusion_coeff(t)**2, rtol=1e-5)
  lam = sde.log_snr(t)
  np.testing.assert_allclose(lam, np.log(alpha) - np.log(sigma), rtol=1e-5, atol=1e-5)
  assert bool(jnp.all(jnp.diff(lam) < 0)), lam
  np.testing.assert_allclose(sde.t_of_log_snr(lam), t, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("name", list(SDES))
def test_t_of_log_snr_on_a_log_snr_grid(name):
  """Uniform steps in lambda map back to times whose lambda is that grid (DPM-Solver's time steps)."""
  sde = SDES[name]
  lam = jnp.linspace(sde.log_snr(jnp.float32(sde.T)), sde.log_snr(jnp.float32(1e-3)), 50)
  t = sde.t_of_log_snr(lam)
  assert bool(jnp.all((t > 0) & (t <= sde.T * (1 + 1e-5))))
  np.testing.assert_allclose(sde.log_snr(t), lam, rtol=1e-4, atol=1e-3)


def test_cosine_schedule_closed_form():
  """Nichol & Dhariwal 2021, Eq. 17: alphabar(t) = f(t) / f(0), f(t) = cos^2(pi/2 (t + s) / (1 + s))."""
  sde = SDES["cosine"]
  t = np.linspace(0.0, sde.T, 11)
  f = lambda u: np.cos(0.5 * np.pi * (u + 0.008) / 1.008) ** 2
  np.testing.assert_allclose(np.asarray(sde.alpha(jnp.asarray(t, jnp.float32)))**2, f(t) / f(0),
                             rtol=1e-4, atol=1e-7)
  # Its discrete betas are Nichol & Dhariwal's 1 - alphabar_t / alphabar_{t-1} on the grid.
  n = 50
  tt = jnp.asarray(np.arange(1, n + 1) * sde.T / n, jnp.float32)
  want = 1 - f(np.arange(1, n + 1) * sde.T / n) / f(np.arange(n) * sde.T / n)
  np.testing.assert_allclose(sde.cosine_betas(tt, n), np.minimum(want, 0.999), rtol=2e-3, atol=1e-6)


def test_sdes_are_frozen_and_abstract():
  with pytest.raises(TypeError):
    sde_lib.SDE()  # pylint: disable=abstract-class-instantiated
  with pytest.raises(AttributeError):
    SDES["vp"].N = 10
  assert sde_lib.VESDE(0.01, 50.0, 1000) == sde_lib.VESDE()  # positional order of API.md


def test_discrete_step_count_is_an_argument():
  """The n of a discretization is passed explicitly; the field N is only its default."""
  vp, ve = SDES["vp"], SDES["ve"]
  x, t = jnp.ones((3, 2)), jnp.full((3,), 0.5)
  f_default, g_default = vp.discretize(x, t)
  f_n, g_n = vp.discretize(x, t, 1000)
  np.testing.assert_array_equal(g_default, g_n)
  _, g_100 = vp.discretize(x, t, 100)
  # beta_i of a 100-step DDPM table at t = 0.5: (beta_min + 0.5 (beta_max - beta_min) * 99/99... )/100
  i = int(np.floor(0.5 * 99 + 1e-4))
  np.testing.assert_allclose(g_100, np.sqrt(np.linspace(0.1 / 100, 20.0 / 100, 100)[i]), rtol=1e-6)
  np.testing.assert_allclose(ve.smld_sigmas(10), np.exp(np.linspace(np.log(0.01), np.log(50), 10)),
                             rtol=1e-5)


def test_no_module_tests_the_class_of_an_sde():
  """Everything outside scorejax/sde.py reads the schedule, never the SDE's class."""
  import pathlib
  import re
  root = pathlib.Path(sde_lib.__file__).parent
  pattern = re.compile(r"isinstance\([^)]*(" + "|".join(
      [c.__name__ for c in sde_lib.SDES.values()] + ["SDE"]) + r")\b")
  offenders = [f"{p.relative_to(root)}:{i + 1}" for p in sorted(root.rglob("*.py")) if p.name != "sde.py"
               for i, line in enumerate(p.read_text().splitlines()) if pattern.search(line)]
  assert not offenders, offenders
