"""Controllable generation against exact answers from the Gaussian-mixture oracle.

* Guidance: with the mixture's components as classes, the time-dependent class
  posterior p_t(c | x) is closed form (`marginal_log_posterior_fn`), and the guided
  score at scale 1 is exactly the score of component c's marginal; so is the
  classifier-free rule with w = 0. Samples must be of component c alone (>= 99%
  assigned to c) and as close to true draws of c as two true sets are to each other
  (SW2 <= 1.5 x that floor).
* Inpainting: given some coordinates of a diagonal-covariance mixture, the rest
  follow a mixture with closed-form weights (`known_log_posterior`). Where those
  weights are >= 99% sure of a component, the inpainted sample must lie in it.
* Encoding: decode(encode(x)) = x, and latents of true samples are distributed as
  the prior (mean and covariance within sampling error).
* Colorization keeps the grey level; the colour map is orthonormal.

Sample sizes: a fraction p estimated from n samples scatters by sqrt(p (1 - p) / n);
the agreement thresholds below are >= 4 such deviations from the measured rates.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scorejax import sde as sde_lib
from scorejax.controllable import (INPAINT_METHODS, classifier_free_guided_score,
                                   classifier_guided_score, colorize, decode, encode, inpaint,
                                   interpolate)
from scorejax.controllable import smc
from scorejax.controllable.colorize import COLOR_MAP, couple, decouple
from scorejax.controllable.flow_encoder import slerp
from scorejax.controllable.guidance import NULL_LABEL, step_floored_variance, tweedie_variance
from scorejax.sampling import few_step_sample, ode_sample, pc_sample
from scorejax.toy import distances
from scorejax.toy import mixture as analytic

SDES = {"ve": sde_lib.VESDE(), "vp": sde_lib.VPSDE(), "subvp": sde_lib.subVPSDE()}


@functools.partial(jax.jit, static_argnums=2)
def _sample(mix, key, n):
  """n exact samples of `mix` (one compiled call rather than op by op)."""
  return mix.sample(key, n)


def _params(pairs, fast):
  """pytest params for `pairs` (tuples), slow unless in `fast`."""
  return [pytest.param(*p, id="-".join(p), marks=[] if p in fast else [pytest.mark.slow])
          for p in pairs]


# --- guidance ----------------------------------------------------------------------------

N_GUIDED = 2048
CLASS = 0  # the lightest component (weight 0.1): unguided, only 10% of samples are in it


@pytest.fixture(scope="module")
def mixture_8d():  # built in one jitted call: fewer small compilations than op by op
  return jax.jit(lambda k: analytic.high_dim_mixture(k, dim=8, num_components=4))(jax.random.key(3))


GUIDANCE_SAMPLERS = {
    "pc": functools.partial(pc_sample, predictor="reverse_diffusion", corrector="langevin"),
    "ode": ode_sample,
    "few_step": functools.partial(few_step_sample, method="dpm_solver++_2m", n_steps=50),
}


@functools.partial(jax.jit, static_argnums=2)
def _component_distances(mix, x, c):
  """(component frequencies of x, SW2(x, true draws of c), SW2 between two true sets)."""
  k1, k2, k3 = jax.random.split(jax.random.key(17), 3)
  true1, true2 = mix.component(c).sample(k1, x.shape[0]), mix.component(c).sample(k2, x.shape[0])
  return (distances.component_frequencies(mix, x), distances.sliced_wasserstein2(k3, x, true1),
          distances.sliced_wasserstein2(k3, true2, true1))


def _assert_samples_of_component(mix, x, c, tag):
  freq, sw, floor = _component_distances(mix, x, c)
  assert float(freq[c]) >= 0.99, (tag, freq)
  assert float(sw) <= 1.5 * float(floor), (tag, float(sw), float(floor))


@pytest.mark.parametrize("sampler,sde_name", _params(
    [(s, n) for s in GUIDANCE_SAMPLERS for n in SDES], fast={("few_step", "ve")}))
def test_classifier_guidance_with_exact_posterior_samples_the_class(sampler, sde_name, mixture_8d):
  mix, sde = mixture_8d, SDES[sde_name]
  labels = jnp.full((N_GUIDED,), CLASS)
  score_fn = classifier_guided_score(analytic.marginal_score_fn(mix, sde),
                                     analytic.marginal_log_posterior_fn(mix, sde), labels,
                                     scale=1.0)
  fn = functools.partial(GUIDANCE_SAMPLERS[sampler], sde=sde, score_fn=score_fn,
                         shape=(N_GUIDED, mix.dim))
  x, _ = jax.jit(fn)(jax.random.key(0))
  _assert_samples_of_component(mix, x, CLASS, (sampler, sde_name))


def test_classifier_guided_score_is_the_component_score(mixture_8d):
  """At scale 1 with the exact posterior, grad log p_t(x) + grad log p_t(c | x) is the
  score of component c's marginal; per-example labels pick per-example classes; scale 0
  is the unconditional score and scale 2 doubles the class term."""
  mix, sde = mixture_8d, SDES["subvp"]
  x = 2.0 * jax.random.normal(jax.random.key(1), (6, mix.dim))
  t = jnp.linspace(0.05, 0.9, 6)
  labels = jnp.array([0, 1, 2, 3, 1, 0])

  @jax.jit
  def scores(x, t):
    guided = [classifier_guided_score(analytic.marginal_score_fn(mix, sde),
                                      analytic.marginal_log_posterior_fn(mix, sde), labels,
                                      scale=scale)(x, t) for scale in (1.0, 0.0, 2.0)]
    components = jnp.stack([analytic.marginal_score_fn(mix.component(k), sde)(x, t)
                            for k in range(mix.num_components)])
    return guided, analytic.marginal_score_fn(mix, sde)(x, t), components

  (one, zero, two), plain, components = scores(x, t)
  want = components[labels, jnp.arange(6)]
  np.testing.assert_allclose(one, want, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(zero, plain, rtol=1e-6)
  np.testing.assert_allclose(two, plain + 2.0 * (one - plain), rtol=1e-4, atol=1e-4)


def _exact_cond_score_fn(mix, sde):
  """cond_score_fn(x, t, labels): component `label`'s marginal score, -1: the mixture's."""
  scores = [analytic.marginal_score_fn(mix.component(k), sde) for k in range(mix.num_components)]
  uncond = analytic.marginal_score_fn(mix, sde)

  def cond_score_fn(x, t, labels):
    all_scores = jnp.stack([uncond(x, t)] + [s(x, t) for s in scores])  # (K + 1, B, D)
    return jnp.take_along_axis(all_scores, (labels + 1)[None, :, None], axis=0)[0]

  return cond_score_fn


@pytest.mark.parametrize("sampler,sde_name", _params(
    [("ode", n) for n in SDES] + [("pc", "ve")], fast=set()))
def test_classifier_free_guidance_at_zero_samples_the_class(sampler, sde_name, mixture_8d):
  mix, sde = mixture_8d, SDES[sde_name]
  labels = jnp.full((N_GUIDED,), CLASS)
  score_fn = classifier_free_guided_score(_exact_cond_score_fn(mix, sde), labels, scale=0.0)
  fn = functools.partial(GUIDANCE_SAMPLERS[sampler], sde=sde, score_fn=score_fn,
                         shape=(N_GUIDED, mix.dim))
  x, _ = jax.jit(fn)(jax.random.key(4))
  _assert_samples_of_component(mix, x, CLASS, (sampler, sde_name))


def test_classifier_free_guided_score_rule(mixture_8d):
  """(1 + w) s(x, t, y) - w s(x, t, none), evaluated as one call on the doubled batch."""
  mix, sde = mixture_8d, SDES["vp"]
  cond = _exact_cond_score_fn(mix, sde)
  calls = []

  def counted(x, t, labels):
    calls.append(x.shape[0])
    return cond(x, t, labels)

  x = jax.random.normal(jax.random.key(2), (5, mix.dim))
  t = jnp.full((5,), 0.3)
  labels = jnp.array([0, 1, 2, 3, 2])
  got, want = jax.jit(lambda x, t: (
      classifier_free_guided_score(counted, labels, 1.5)(x, t),
      2.5 * cond(x, t, labels) - 1.5 * cond(x, t, jnp.full((5,), NULL_LABEL))))(x, t)
  assert calls == [10]  # traced once, on the doubled batch
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# --- inpainting -----------------------------------------------------------------------------

N_INPAINT = 1024


@pytest.fixture(scope="module")
def mixture_48d():
  build = jax.jit(lambda k: analytic.high_dim_mixture(k, dim=48, num_components=4))
  return build(jax.random.key(2))


def _inpainting_problem(mix, fraction_known):
  """(y, known): N_INPAINT true samples with the first `fraction_known` coordinates known."""
  known = np.arange(mix.dim) < round(fraction_known * mix.dim)
  # NaN where unknown: inpaint must never read those values.
  y = jax.jit(lambda m, k: jnp.where(known, m.sample(k, N_INPAINT), jnp.nan))(
      mix, jax.random.key(1))
  return y, jnp.asarray(known)


@jax.jit
def _agreement_counts(mix, x, y, known):
  posterior = jnp.exp(mix.known_log_posterior(jnp.where(known, y, 0.0), known))
  sure = posterior.max(-1) >= 0.99
  component = jnp.argmax(mix.responsibilities(x), axis=-1)
  return jnp.sum((component == posterior.argmax(-1)) & sure), jnp.sum(sure)


def _agreement(mix, x, y, known):
  """(fraction of the >= 99%-sure examples whose sample lies in the sure component,
  number of sure examples)."""
  agree, sure = _agreement_counts(mix, x, y, known)
  return float(agree / sure), int(sure)


@pytest.mark.parametrize("dim", [pytest.param(8, id="8d"),
                                 pytest.param(48, id="48d", marks=pytest.mark.slow)])
def test_exact_conditional_of_the_mixture(dim, mixture_8d, mixture_48d):
  """The closed-form conditional: its samples keep y and sit in the component its weights
  are sure of; the weights are Bayes' rule (everything known: the responsibilities;
  nothing known: the mixture weights)."""
  mix = mixture_8d if dim == 8 else mixture_48d
  y, known = _inpainting_problem(mix, 0.25 if dim == 48 else 0.5)

  @jax.jit
  def check(key):
    x = mix.sample_given_known(key, jnp.where(known, y, 0.0), known)
    full = mix.known_log_posterior(x[:8], jnp.ones((mix.dim,), bool))
    none = mix.known_log_posterior(x[:8], jnp.zeros((mix.dim,), bool))
    return x, full, mix.log_responsibilities(x[:8]), none, _agreement_counts(mix, x, y, known)

  x, full, responsibilities, none, (n_agree, n_sure) = check(jax.random.key(5))
  assert bool(jnp.all(jnp.where(known, x == y, True)))
  assert int(n_agree) >= 0.99 * int(n_sure) and int(n_sure) >= 300, (int(n_agree), int(n_sure))
  np.testing.assert_allclose(full, responsibilities, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(jnp.exp(none), jnp.broadcast_to(mix.weights, (8, 4)), rtol=1e-5)


def _inpaint(mix, sde, y, known, **options):
  score_fn = analytic.marginal_score_fn(mix, sde)
  return jax.jit(lambda k: inpaint(k, sde, score_fn, y, known[None], **options))(jax.random.key(2))


@pytest.mark.slow
@pytest.mark.parametrize("sde_name", list(SDES))
def test_replace_inpainting_agrees_with_exact_conditional_half_known(sde_name, mixture_48d):
  mix, sde = mixture_48d, SDES[sde_name]
  y, known = _inpainting_problem(mix, 0.5)
  x, nfe = _inpaint(mix, sde, y, known, method="replace")
  assert nfe == 2 * sde.N
  assert bool(jnp.all(jnp.where(known, x == y, True)))
  agreement, n_sure = _agreement(mix, x, y, known)
  assert agreement >= 0.98 and n_sure >= 900, (agreement, n_sure)  # measured 0.995


@pytest.mark.slow
@pytest.mark.parametrize("sde_name", list(SDES))
def test_guided_inpainting_finds_the_mode_with_a_quarter_known(sde_name, mixture_48d):
  """A quarter known: the exact conditional is >= 99% sure for ~76% of the examples, and
  there re-noise-and-replace lands in the wrong mode for ~16% of them (agreement measured
  0.83-0.84), the reconstruction-guided default for ~3% (0.97)."""
  mix, sde = mixture_48d, SDES[sde_name]
  y, known = _inpainting_problem(mix, 0.25)
  x, _ = _inpaint(mix, sde, y, known)  # the default method
  assert bool(jnp.all(jnp.where(known, x == y, True)))
  agreement, n_sure = _agreement(mix, x, y, known)
  x_replace, _ = _inpaint(mix, sde, y, known, method="replace")
  agreement_replace, _ = _agreement(mix, x_replace, y, known)
  assert agreement >= 0.9, (agreement, agreement_replace, n_sure)
  # The regime discriminates: the method without steering fails it.
  assert agreement_replace < 0.9, (agreement, agreement_replace)


@pytest.mark.parametrize("sde_name", list(SDES))
def test_guidance_variance_floor_changes_exactly_the_overshooting_steps(sde_name):
  """On a 200-step uniform grid, a step's guidance gain is G^2 / (alpha^2 r_t^2)
  (G^2 = g^2 dt): with the floor it is <= 1 everywhere, and r_t^2 differs from the Tweedie
  variance exactly at the steps whose gain would exceed 1 (for VP and sub-VP the last step
  among them, where it exceeds 2: the divergence the floor removes)."""
  sde, n = SDES[sde_name], 200
  t = jnp.linspace(sde.T, 1e-3, n)
  x = jnp.zeros((n, 2))
  alpha, sigma = sde.marginal_coeffs(t)
  plain = tweedie_variance(alpha, sigma)
  floored = step_floored_variance(sde, x, t, n_steps=n)
  _, g = sde.discretize(x, t, n)
  gain = lambda r2: np.asarray(g**2 / (alpha**2 * r2))
  assert gain(floored).max() <= 1.0 + 1e-5
  overshooting = gain(plain) > 1.0
  np.testing.assert_allclose(np.asarray(floored)[~overshooting], np.asarray(plain)[~overshooting],
                             rtol=1e-6)
  assert np.all(np.asarray(floored)[overshooting] > np.asarray(plain)[overshooting])
  if sde_name != "ve":
    assert gain(plain)[-1] > 2.0
  np.testing.assert_allclose(step_floored_variance(sde, x, t), plain, rtol=1e-6)  # no grid: no floor


@pytest.mark.slow
def test_smc_inpainting_finds_the_mode_with_a_quarter_known(mixture_48d):
  """Sequential Monte Carlo with 8 particles and 500 steps (4000 evaluations): ~0.97."""
  mix, sde = mixture_48d, SDES["vp"]
  y, known = _inpainting_problem(mix, 0.25)
  x, nfe = _inpaint(mix, sde, y, known, method="smc", n_particles=8, n_steps=500)
  assert nfe == 4000
  assert bool(jnp.all(jnp.where(known, x == y, True)))
  agreement, n_sure = _agreement(mix, x, y, known)
  assert agreement >= 0.9, (agreement, n_sure)


def test_smc_known_path_has_the_forward_marginals():
  """The noising path of y: at every grid time, N(alpha(t) y, sigma(t)^2) per coordinate,
  and consecutive points correlated as the forward process makes them."""
  sde = SDES["vp"]
  ts = jnp.linspace(sde.T, 1e-3, 6)
  y = jnp.full((4096, 1), 1.5)
  path = jax.jit(lambda k: smc.known_path(k, sde, y, ts))(jax.random.key(0))[:, :, 0]  # (6, 4096)
  alpha, sigma = sde.marginal_coeffs(ts)
  se = 1.0 / math.sqrt(4096)
  np.testing.assert_allclose(path.mean(1), 1.5 * alpha, atol=4 * se)
  np.testing.assert_allclose(path.std(1), sigma, rtol=5 * math.sqrt(0.5) * se)
  # Cov(y_s, y_t) = alpha_t / alpha_s sigma_s^2 for s < t (Markov, Gaussian).
  cov = jnp.mean((path[3] - path[3].mean()) * (path[2] - path[2].mean()))
  np.testing.assert_allclose(cov, alpha[2] / alpha[3] * sigma[3]**2, atol=5 * se)


def test_systematic_resampling_keeps_particles_in_proportion():
  log_w = jnp.log(jnp.array([0.5, 0.25, 0.125, 0.125, 0.0, 0.0, 0.0, 0.0]) + 1e-30)
  ancestors = jax.jit(jax.vmap(smc._systematic_resample, (0, None)))(
      jax.random.split(jax.random.key(0), 64), log_w)
  counts = jax.vmap(lambda a: jnp.bincount(a, length=8))(ancestors)
  # Systematic resampling gives each particle floor(P w) or ceil(P w) offspring.
  want = jnp.broadcast_to(jnp.array([4, 2, 1, 1, 0, 0, 0, 0]), (64, 8))
  np.testing.assert_array_equal(counts, want)


@pytest.mark.parametrize("method,sampler", _params(
    [(m, s) for m in INPAINT_METHODS for s in ("pc", "ddim") if (m, s) != ("smc", "ddim")],
    fast={("guided", "pc")}))
def test_inpaint_returns_y_where_known(method, sampler, mixture_8d):
  """Exact equality on the known part for every method and sampler, with a per-pixel
  mask broadcast over the batch; y's values where unknown (NaN here) are never read."""
  mix, sde = mixture_8d, SDES["vp"]
  mask = (jnp.arange(mix.dim) % 2 == 0).astype(jnp.float32)[None]
  y = jnp.where(mask > 0, _sample(mix, jax.random.key(0), 16), jnp.nan)
  if method == "smc":
    options = dict(n_steps=20, n_particles=3)
  elif sampler == "pc":
    options = dict(n_steps=20, corrector=None)
  else:
    options = dict(sampler=sampler, n_steps=10)
  x, nfe = jax.jit(lambda k: inpaint(k, sde, analytic.marginal_score_fn(mix, sde), y, mask,
                                     method=method, **options))(jax.random.key(1))
  assert x.shape == y.shape and bool(jnp.all(jnp.isfinite(x)))
  assert bool(jnp.all(x[:, ::2] == y[:, ::2]))
  assert nfe == {"smc": 60, "pc": 20, "ddim": 11}["smc" if method == "smc" else sampler]


def test_inpaint_rejects_bad_arguments():
  sde = SDES["vp"]
  y = jnp.zeros((2, 4))
  with pytest.raises(ValueError, match="not one of"):
    inpaint(jax.random.key(0), sde, lambda x, t: -x, y, jnp.ones((4,)), method="magic")
  with pytest.raises(ValueError, match="broadcast"):
    inpaint(jax.random.key(0), sde, lambda x, t: -x, y, jnp.ones((3,)))
  with pytest.raises(ValueError, match="cannot impose"):
    inpaint(jax.random.key(0), sde, lambda x, t: -x, y, jnp.ones((4,)), sampler="unipc")


# --- colorization -------------------------------------------------------------------------

def test_color_map_is_orthonormal_with_the_grey_axis_first():
  q = np.asarray(COLOR_MAP, np.float64)
  np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-6)
  np.testing.assert_allclose(q[:, 0], np.full(3, 1 / math.sqrt(3)), atol=1e-7)
  rgb = np.random.default_rng(0).normal(size=(2, 3, 3, 3)).astype(np.float32)
  u, back = jax.jit(lambda x: (decouple(x), couple(decouple(x))))(rgb)
  np.testing.assert_allclose(back, rgb, atol=1e-6)
  np.testing.assert_allclose(u[..., 0], math.sqrt(3) * rgb.mean(-1), atol=1e-6)


@pytest.fixture(scope="module")
def color_mixture():
  """Four colour 2 x 2 images (12-D) with isotropic components, distinct in grey and colour."""
  means = 0.8 * jax.random.normal(jax.random.key(8), (4, 12))
  return analytic.isotropic_mixture([0.1, 0.2, 0.3, 0.4], means, 0.15)


@pytest.mark.parametrize("n_steps", [pytest.param(10, id="fast"),
                                     pytest.param(1000, id="full", marks=pytest.mark.slow)])
def test_colorize_keeps_grey_and_finds_the_colours(n_steps, color_mixture):
  """The channel mean is the input grey; with the full sampler the colours come from the
  component the grey level implies (an isotropic mixture stays one in the rotated space,
  where the grey channel is a set of known coordinates)."""
  mix, sde = color_mixture, SDES["ve"]
  full = n_steps == 1000
  n = 512 if full else 16
  truth = jax.jit(lambda m, k: m.sample(k, n).reshape(n, 2, 2, 3))(mix, jax.random.key(0))
  gray = np.asarray(truth).mean(-1, keepdims=True)
  options = {} if full else dict(corrector=None)
  x, nfe = jax.jit(lambda k: colorize(k, sde, analytic.marginal_score_fn(mix, sde), gray,
                                      n_steps=n_steps, **options))(jax.random.key(1))
  assert x.shape == (n, 2, 2, 3) and nfe == (2 if full else 1) * n_steps
  np.testing.assert_allclose(x.mean(-1, keepdims=True), gray, rtol=0, atol=1e-6)
  if not full:
    return
  rotated_means = decouple(mix.means.reshape(4, 4, 3)).reshape(4, 12)
  rotated = analytic.GaussianMixture(mix.weights, rotated_means, mix.variances)
  known = jnp.tile(jnp.array([True, False, False]), 4)
  y_u = decouple(truth).reshape(n, 12)
  agreement, n_sure = _agreement(rotated, decouple(x).reshape(n, 12), y_u, known)
  assert agreement >= 0.9 and n_sure >= 100, (agreement, n_sure)  # measured 0.93


# --- the probability-flow encoder ---------------------------------------------------------------

N_ENCODE = 2048


@pytest.mark.parametrize("sde_name", [pytest.param(n, marks=[] if n == "vp" else [pytest.mark.slow])
                                      for n in SDES])
def test_encode_decode_round_trip_and_latents_follow_the_prior(sde_name, mixture_8d):
  mix, sde = mixture_8d, SDES[sde_name]
  score_fn = analytic.marginal_score_fn(mix, sde)
  x = _sample(mix, jax.random.key(0), N_ENCODE)
  # Two programs: encode's is kept by the persistent compilation cache, decode's has
  # diffrax's failure check (a host callback), which the cache cannot keep.
  z, nfe_enc = jax.jit(lambda x: encode(sde, score_fn, x))(x)
  x_rec, nfe_dec = jax.jit(lambda z: decode(sde, score_fn, z))(z)
  assert int(nfe_enc) > 0 and int(nfe_dec) > 0
  # Relative error over the batch <= 1e-3, and for 99% of the examples alone. The rest lie
  # between modes, where the decoder expands the latent's error (the forward flow
  # contracts low-density regions): there it reaches ~2e-3 at these tolerances.
  err = jnp.linalg.norm(x_rec - x, axis=-1) / jnp.linalg.norm(x, axis=-1)
  assert float(jnp.linalg.norm(x_rec - x) / jnp.linalg.norm(x)) <= 1e-3
  assert float(jnp.quantile(err, 0.99)) <= 1e-3, np.sort(np.asarray(err))[-30:]
  assert float(jnp.max(err)) <= 1e-2, float(jnp.max(err))
  # Latents ~ N(0, prior_std^2 I): mean within 4 standard errors, covariance within 5.
  w = z / sde.prior_std
  se = 1.0 / math.sqrt(N_ENCODE)
  assert float(jnp.max(jnp.abs(w.mean(0)))) <= 4 * se, w.mean(0)
  cov = jnp.cov(w, rowvar=False)
  assert float(jnp.max(jnp.abs(cov - jnp.eye(mix.dim)))) <= 5 * math.sqrt(2) * se, cov
  # The data are far from the prior: the test would notice an identity encoder.
  assert float(jnp.max(jnp.abs(jnp.cov(x / sde.prior_std, rowvar=False) - jnp.eye(mix.dim)))) > 0.3


@pytest.mark.slow
def test_encode_nfe_counts_every_score_evaluation(mixture_8d):
  mix, sde = mixture_8d, SDES["subvp"]
  exact = analytic.marginal_score_fn(mix, sde)
  calls = []

  def counted(x, t):
    jax.debug.callback(lambda _: calls.append(1), t)
    return exact(x, t)

  _, nfe = encode(sde, counted, mix.sample(jax.random.key(0), 1), rtol=1e-3, atol=1e-3)
  jax.effects_barrier()
  assert int(nfe) == len(calls)


@pytest.mark.slow
def test_encode_failure_gives_nan_latents(mixture_8d):
  mix, sde = mixture_8d, SDES["vp"]
  x = _sample(mix, jax.random.key(0), 4)
  z, _ = jax.jit(lambda x: encode(sde, analytic.marginal_score_fn(mix, sde), x, max_steps=3))(x)
  assert bool(jnp.all(jnp.isnan(z)))


@pytest.mark.slow
def test_interpolate_ends_at_its_inputs(mixture_8d):
  mix, sde = mixture_8d, SDES["vp"]
  score_fn = analytic.marginal_score_fn(mix, sde)
  x = mix.sample(jax.random.key(3), 2)
  xs = jax.jit(lambda a, b: interpolate(sde, score_fn, a, b, 5))(x[:1], x[1:])
  assert xs.shape == (5, mix.dim) and bool(jnp.all(jnp.isfinite(xs)))
  np.testing.assert_allclose(xs[0], x[0], rtol=1e-3, atol=1e-3)
  np.testing.assert_allclose(xs[-1], x[1], rtol=1e-3, atol=1e-3)
  # Every point is a sample-like point of the mixture, not a blend between modes.
  typical = mix.log_prob(_sample(mix, jax.random.key(4), 4096))
  assert float(jnp.min(mix.log_prob(xs))) > float(jnp.quantile(typical, 0.001))


def test_slerp_keeps_the_norm_and_hits_the_ends():
  a = jnp.array([[3.0, 0.0], [0.0, 0.0]])
  b = jnp.array([[0.0, 0.0], [0.0, 3.0]])
  zs = jax.jit(slerp)(a, b, jnp.linspace(0.0, 1.0, 7))
  assert zs.shape == (7, 2, 2)
  np.testing.assert_allclose(zs[0], a, atol=1e-6)
  np.testing.assert_allclose(zs[-1], b, atol=1e-6)
  np.testing.assert_allclose(jnp.linalg.norm(zs.reshape(7, -1), axis=-1), 3.0, rtol=1e-6)
  same = jax.jit(slerp)(a, a, jnp.array([0.5]))  # parallel latents fall back to the line
  np.testing.assert_allclose(same[0], a, atol=1e-6)
