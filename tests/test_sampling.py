"""Samplers with the exact mixture score, judged against the true distribution.

Tolerances follow the sampling error: a weight w estimated from n samples scatters
by sqrt(w (1 - w) / n) (0.0044 at w = 0.2, n = 8192), so TV <= 0.02 passes a correct
sampler reliably and fails one that misplaces a few percent of the mass.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scorejax.toy import distances as sample_metrics
from scorejax.toy import mixture as analytic
from scorejax import sde as sde_lib
from scorejax.sampling import (annealed_langevin, langevin_dynamics, ode_sample, pc_sample,
                               solve_reverse_ode, tweedie_denoise)
from scorejax.sampling.solvers import SOLVERS

SDES = {"ve": sde_lib.VESDE(), "vp": sde_lib.VPSDE(), "subvp": sde_lib.subVPSDE(),
        "cosine": sde_lib.CosineVPSDE()}
N_SAMPLES = 8192  # >= 4096; see the module docstring for the tolerance

SAMPLERS = {
    "pc": functools.partial(pc_sample, predictor="reverse_diffusion", corrector="langevin"),
    "euler_maruyama": functools.partial(pc_sample, predictor="euler_maruyama", corrector=None),
    "ode": ode_sample,
}
# The fast tier samples with every sampler and every SDE at least once; the full suite
# runs every pair.
FAST_PAIRS = {("pc", "ve"), ("euler_maruyama", "subvp"), ("ode", "vp"), ("ode", "cosine")}


def _sampler_sde_params():
  return [pytest.param(sampler, sde_name, id=f"{sampler}-{sde_name}",
                       marks=[] if (sampler, sde_name) in FAST_PAIRS else [pytest.mark.slow])
          for sde_name in SDES for sampler in SAMPLERS]


def _sample(sampler, sde, mix, shape, seed=0):
  score_fn = analytic.marginal_score_fn(mix, sde)
  fn = jax.jit(functools.partial(SAMPLERS[sampler], sde=sde, score_fn=score_fn, shape=shape))
  return fn(jax.random.key(seed))


@pytest.mark.parametrize("sampler,sde_name", _sampler_sde_params())
def test_samplers_recover_2d_imbalanced_mixture(sampler, sde_name):
  mix = analytic.imbalanced_mixture_2d()
  x, nfe = _sample(sampler, SDES[sde_name], mix, (N_SAMPLES, 2))
  assert x.shape == (N_SAMPLES, 2) and bool(jnp.all(jnp.isfinite(x)))
  tv = float(sample_metrics.weights_total_variation(mix, x))
  assert tv <= 0.02, (sampler, sde_name, tv, sample_metrics.component_frequencies(mix, x))
  # Second moments too: per-coordinate std of the mixture is sqrt(0.35^2 + 4 * 0.16 * 1.5^2) = 1.25.
  np.testing.assert_allclose(jnp.std(x, axis=0), 1.25, rtol=0.04)
  if sampler == "pc":
    assert int(nfe) == 2000
  if sampler == "euler_maruyama":
    assert int(nfe) == 1000


@pytest.mark.parametrize("sde_name,predictor", [
    pytest.param("ve", "ancestral", marks=pytest.mark.slow), ("ve", "reverse_diffusion"),
    ("vp", "ancestral"), pytest.param("vp", "reverse_diffusion", marks=pytest.mark.slow)],
    ids=["ve-ancestral", "ve-reverse_diffusion", "vp-ancestral", "vp-reverse_diffusion"])
def test_ancestral_and_ald(predictor, sde_name):
  mix = analytic.imbalanced_mixture_2d()
  sde = SDES[sde_name]
  score_fn = analytic.marginal_score_fn(mix, sde)
  corrector = "ald" if predictor == "reverse_diffusion" else None
  x, _ = jax.jit(lambda k: pc_sample(k, sde, score_fn, (N_SAMPLES, 2), predictor=predictor,
                                     corrector=corrector, snr=0.075))(jax.random.key(3))
  assert float(sample_metrics.weights_total_variation(mix, x)) <= 0.02
  np.testing.assert_allclose(jnp.std(x, axis=0), 1.25, rtol=0.04)


def test_ancestral_rejects_subvp():
  with pytest.raises(ValueError, match="ancestral"):
    pc_sample(jax.random.key(0), SDES["subvp"], lambda x, t: -x, (4, 2), predictor="ancestral",
              corrector=None)


@pytest.fixture(scope="module")
def mixture_32d():
  return analytic.high_dim_mixture(jax.random.key(42), dim=32, num_components=4)


@pytest.mark.slow
@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_samplers_recover_32d_mixture(sampler, sde_name, mixture_32d):
  mix = mixture_32d
  x, _ = _sample(sampler, SDES[sde_name], mix, (N_SAMPLES, mix.dim), seed=1)
  tv = float(sample_metrics.weights_total_variation(mix, x))
  assert tv <= 0.02, (sampler, sde_name, tv)
  k1, k2, k3 = jax.random.split(jax.random.key(7), 3)
  fresh, fresh2 = mix.sample(k1, N_SAMPLES), mix.sample(k2, N_SAMPLES)
  sw_model = float(sample_metrics.sliced_wasserstein2(k3, x, fresh))
  sw_floor = float(sample_metrics.sliced_wasserstein2(k3, fresh2, fresh))
  assert sw_model <= 1.5 * sw_floor, (sampler, sde_name, sw_model, sw_floor)


@pytest.mark.slow
@pytest.mark.parametrize("sde_name", list(SDES))
def test_ode_sampler_mean_log_density(sde_name, mixture_32d):
  """Mean log p0 of ODE samples is within 0.1 nats of E[log p0].

  sd(log p0) is about 4 nats here, so 16384 samples give a standard error of 0.03
  and 2^18 true samples pin E[log p0] to 0.008.
  """
  mix = mixture_32d
  n = 16384
  x, _ = _sample("ode", SDES[sde_name], mix, (n, mix.dim), seed=2)
  logp_model = mix.log_prob(x)
  expected = jnp.mean(mix.log_prob(mix.sample(jax.random.key(11), 2**18)))
  se = float(jnp.std(logp_model)) / np.sqrt(n)
  assert se < 0.04
  assert abs(float(jnp.mean(logp_model) - expected)) <= 0.1, (float(jnp.mean(logp_model)), float(expected))


@pytest.mark.parametrize("sde_name", [pytest.param(name, marks=[] if name == "ve" else [pytest.mark.slow])
                                      for name in SDES])
def test_ode_time_variables_solve_the_same_ode(sde_name, mixture_32d):
  """From the same x_T, the ODE integrated in t, in the log-SNR and in the angle ends
  at the same samples: per-sample RMS differences at rtol = atol = 1e-6 are ~2e-6 on
  average and <= 2e-4 at worst, so the bounds leave a 5-10x margin while a wrong factor
  in a velocity or a state scaling moves them by O(1)."""
  sde, mix = SDES[sde_name], mixture_32d
  score_fn = analytic.marginal_score_fn(mix, sde)
  x_T = sde.prior_sampling(jax.random.key(4), (256, mix.dim))
  out = {}
  for tv in ("t", "log_snr", "angle"):
    out[tv], _ = jax.jit(lambda x: solve_reverse_ode(sde, score_fn, x, eps=1e-3, rtol=1e-6,
                                                     atol=1e-6, time_variable=tv))(x_T)
  for tv in ("log_snr", "angle"):
    rms = jnp.sqrt(jnp.mean(jnp.square(out[tv] - out["t"]), axis=-1))
    assert float(jnp.mean(rms)) < 2e-5 and float(jnp.max(rms)) < 1e-3, (tv, float(jnp.max(rms)))


@pytest.mark.slow
@pytest.mark.parametrize("sde_name", list(SDES))
def test_ode_sample_defaults_reach_p_eps_with_at_most_60_evaluations(sde_name):
  """Issue 9's target for `ode_sample` with its defaults (angle, rtol = atol = 1e-5,
  eps = 1e-3, no denoising) on a 48-D mixture with the exact score: <= 60 score
  evaluations per sample and |mean log p0(samples) - E_{x ~ p_eps}[log p0(x)]| <= 0.05
  nats. sd(log p0) ~ sqrt(D / 2) ~ 4.9 nats, so 2^17 samples and 2^20 true ones give a
  standard error of ~0.015 (checked below), and a bias of 0.05 is 3.4 of them: an error
  the size of the target fails the test (measured: bench/bench_samplers.py --table 2)."""
  sde = SDES[sde_name]
  mix = analytic.high_dim_mixture(jax.random.key(42), dim=48)
  n, chunk, eps = 2**17, 8192, 1e-3
  fn = jax.jit(functools.partial(ode_sample, sde=sde, score_fn=analytic.marginal_score_fn(mix, sde),
                                 shape=(chunk, mix.dim)))
  logps = []
  for i in range(n // chunk):
    x, nfe = fn(jax.random.fold_in(jax.random.key(5), i))
    assert int(nfe) <= 60, int(nfe)
    logps.append(mix.log_prob(x))
  logp = jnp.concatenate(logps)
  marginal = mix.marginal(sde, eps)
  logp_true = jnp.concatenate([mix.log_prob(marginal.sample(jax.random.fold_in(jax.random.key(12), i),
                                                            2**16)) for i in range(16)])
  se = float(jnp.sqrt(jnp.var(logp) / n + jnp.var(logp_true) / logp_true.size))
  dlogp = float(jnp.mean(logp) - jnp.mean(logp_true))
  assert se < 0.02 and abs(dlogp) <= 0.05, (dlogp, se)


def test_ode_time_variable_names():
  with pytest.raises(ValueError, match="angle"):
    ode_sample(jax.random.key(0), SDES["vp"], lambda x, t: -x, (2, 2), time_variable="sigma")


def test_langevin_alone_misses_weights_but_annealed_recovers_them():
  """Song & Ermon 2019, Sec. 3.2 / Fig. 3: with the exact data score, Langevin dynamics
  started uniformly keeps each chain in its starting basin, so the 0.1 / 0.9 weights come
  out near 1/2; annealing from sigma_1 = 20 (comparable to the mode distance 14) fixes them."""
  mix = analytic.song_ermon_mixture(w_small=0.1)
  n = 4096
  k_init, k_ld, k_ald = jax.random.split(jax.random.key(0), 3)
  x_init = jax.random.uniform(k_init, (n, 2), minval=-8.0, maxval=8.0)
  x_ld = jax.jit(lambda k: langevin_dynamics(k, mix.score, x_init, step_size=0.1, n_steps=1000))(k_ld)
  tv_ld = float(sample_metrics.weights_total_variation(mix, x_ld))
  assert tv_ld > 0.25, tv_ld

  def score_fn_sigma(x, sigma):  # score of p_data convolved with N(0, sigma^2 I)
    return jax.vmap(lambda xi, si: mix.affine(1.0, si).score_single(xi))(x, sigma)

  sigmas = sde_lib.ncsn_sigmas(0.1, 20.0, 10)
  x_ald = jax.jit(lambda k: annealed_langevin(k, score_fn_sigma, sigmas, (n, 2), n_steps_each=100,
                                              step_lr=2e-3, x_init=x_init))(k_ald)
  tv_ald = float(sample_metrics.weights_total_variation(mix, x_ald))
  assert tv_ald <= 0.05, tv_ald
  np.testing.assert_allclose(jnp.std(x_ald - jnp.sign(x_ald[:, :1]) * 5.0, axis=0), 1.0, rtol=0.1)


def test_tweedie_denoise_is_posterior_mean():
  """For a Gaussian N(mu, v), E[x0 | xt] = mu + alpha v (xt - alpha mu) / (alpha^2 v + std^2)."""
  mix = analytic.isotropic_mixture([1.0], [[0.7, -0.3]], 0.5)
  for sde in SDES.values():
    x = jnp.array([[1.0, 2.0], [-0.5, 0.1]])
    t = 0.4
    alpha, std = sde.marginal_coeffs(jnp.float32(t))
    want = 0.7 * jnp.array([1.0, 0]) + jnp.array([0, -0.3])
    want = want[None] + alpha * 0.25 * (x - alpha * want[None]) / (alpha**2 * 0.25 + std**2)
    got = tweedie_denoise(sde, analytic.marginal_score_fn(mix, sde), x, t)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# Open: with the angle variable's explicit first step, Bosh3 makes one score evaluation
# more than `evaluations_per_solve` counts (28 counted, 29 made; measured).
_NFE_OPEN = {"bosh3": pytest.mark.xfail(strict=True, reason="bosh3's nfe rule is one short "
                                        "with an explicit first step (28 vs 29)")}


@pytest.mark.parametrize("solver", [pytest.param(name, marks=([] if name in ("tsit5", "heun") else
                                                 [pytest.mark.slow]) + [m for m in [_NFE_OPEN.get(name)] if m])
                                    for name in sorted(SOLVERS)])
def test_ode_nfe_counts_every_score_evaluation(solver):
  mix = analytic.imbalanced_mixture_2d()
  sde = SDES["vp"]
  exact = analytic.marginal_score_fn(mix, sde)
  calls = []

  def counted(x, t):
    jax.debug.callback(lambda _: calls.append(1), t)
    return exact(x, t)

  _, nfe = ode_sample(jax.random.key(0), sde, counted, (8, 2), solver=solver, rtol=1e-3, atol=1e-3)
  jax.effects_barrier()
  assert int(nfe) == len(calls)


def test_samplers_jit_and_vmap_over_keys():
  mix = analytic.imbalanced_mixture_2d()
  sde = SDES["vp"]
  score_fn = analytic.marginal_score_fn(mix, sde)
  keys = jax.random.split(jax.random.key(0), 3)
  pc = jax.jit(jax.vmap(lambda k: pc_sample(k, sde, score_fn, (16, 2), n_steps=50)[0]))(keys)
  ode = jax.jit(jax.vmap(lambda k: ode_sample(k, sde, score_fn, (16, 2), rtol=1e-3, atol=1e-3)[0]))(keys)
  score_fn_sigma = lambda x, s: jax.vmap(lambda xi, si: mix.affine(1.0, si).score_single(xi))(x, s)
  ald = jax.jit(jax.vmap(lambda k: annealed_langevin(k, score_fn_sigma, [1.0, 0.1], (16, 2),
                                                     n_steps_each=5)))(keys)
  for out in (pc, ode, ald):
    assert out.shape == (3, 16, 2) and bool(jnp.all(jnp.isfinite(out)))
    assert not np.allclose(out[0], out[1])
  # vmap over keys gives what each key gives alone.
  single = pc_sample(keys[1], sde, score_fn, (16, 2), n_steps=50)[0]
  np.testing.assert_allclose(pc[1], single, rtol=1e-4, atol=1e-5)


def test_bad_sampler_names():
  with pytest.raises(ValueError, match="unknown predictor"):
    pc_sample(jax.random.key(0), SDES["vp"], lambda x, t: -x, (2, 2), predictor="rk4")
  with pytest.raises(ValueError, match="unknown corrector"):
    pc_sample(jax.random.key(0), SDES["vp"], lambda x, t: -x, (2, 2), corrector="hmc")
  with pytest.raises(ValueError, match="unknown ODE solver"):
    ode_sample(jax.random.key(0), SDES["vp"], lambda x, t: -x, (2, 2), solver="rk45")


@pytest.mark.parametrize("name", ["euler_maruyama", "reverse_diffusion", "ancestral"])
def test_each_predictor_evaluates_the_score_once_at_its_input(name):
  """The contract the PC sampler relies on to hand a predictor the score it computed."""
  from scorejax.sampling.predictors import get_predictor
  calls = []

  def score_fn(x, t):
    calls.append((x, t))
    return -x

  sde = SDES["vp"]
  x, t = jnp.ones((4, 2)), jnp.full((4,), 0.5)
  get_predictor(name)(jax.random.key(0), sde, score_fn, x, t, 10)
  assert len(calls) == 1 and calls[0][0] is x and calls[0][1] is t


@pytest.mark.parametrize("corrector", ["langevin", "ald"])
def test_pc_loop_evaluates_the_network_at_one_place(corrector):
  """score_fn is traced twice for a predictor with two corrector steps per level: once
  for the argument check, once in the loop's body (the network is compiled once, not
  once per kind of step), and the sampler still makes 3 evaluations per level."""
  mix = analytic.imbalanced_mixture_2d()
  sde = SDES["ve"]  # VP's discrete betas exceed 1 at 10 levels (sqrt(1 - beta) is NaN)
  exact = analytic.marginal_score_fn(mix, sde)
  traced = []

  def score_fn(x, t):
    traced.append(1)
    return exact(x, t)

  x, nfe = jax.jit(lambda k: pc_sample(k, sde, score_fn, (8, 2), n_steps=10, corrector=corrector,
                                       n_corrector_steps=2))(jax.random.key(0))
  assert len(traced) == 2 and nfe == 30 and bool(jnp.all(jnp.isfinite(x)))


def test_pc_trajectory_ends_where_pc_sample_ends():
  from scorejax.sampling import pc_trajectory
  mix = analytic.imbalanced_mixture_2d()
  sde = SDES["ve"]
  score_fn = analytic.marginal_score_fn(mix, sde)
  key = jax.random.key(5)
  frames, ts = jax.jit(lambda k: pc_trajectory(k, sde, score_fn, (64, 2), n_frames=5,
                                               n_steps=100))(key)
  x, _ = pc_sample(key, sde, score_fn, (64, 2), n_steps=100)
  assert frames.shape == (6, 64, 2) and ts.shape == (6,)
  np.testing.assert_allclose(frames[-1], x, rtol=1e-5, atol=1e-5)
  assert float(ts[0]) == 1.0 and float(ts[-1]) == pytest.approx(1e-3)
  # The prior frame is wide (sigma_max = 50), the last one has the data's scale.
  assert float(jnp.std(frames[0])) > 20 and float(jnp.std(frames[-1])) < 2
  with pytest.raises(ValueError, match="multiple of n_frames"):
    pc_trajectory(key, sde, score_fn, (4, 2), n_frames=7, n_steps=100)


@pytest.mark.slow  # compiles a PC scan and two diffrax solves (~10 s)
def test_pc_and_ode_trajectories_from_given_prior_points():
  """pc_trajectory(x_T=...) starts where told; ode_trajectory ends where solve_reverse_ode does."""
  from scorejax.sampling import ode_trajectory, pc_trajectory, solve_reverse_ode
  mix = analytic.imbalanced_mixture_2d()
  sde = SDES["vp"]
  score_fn = analytic.marginal_score_fn(mix, sde)
  x_T = sde.prior_sampling(jax.random.key(0), (32, 2))
  frames, _ = jax.jit(lambda k: pc_trajectory(k, sde, score_fn, (32, 2), n_frames=2, n_steps=20,
                                              corrector=None, x_T=x_T))(jax.random.key(1))
  np.testing.assert_array_equal(frames[0], x_T)
  path, ts = jax.jit(lambda x: ode_trajectory(sde, score_fn, x, n_frames=4, rtol=1e-6,
                                              atol=1e-6))(x_T)
  x_eps, _ = jax.jit(lambda x: solve_reverse_ode(sde, score_fn, x, eps=1e-3, rtol=1e-6,
                                                 atol=1e-6, time_variable="angle"))(x_T)
  assert path.shape == (5, 32, 2) and ts.shape == (5,)
  np.testing.assert_allclose(path[0], x_T, atol=1e-6)
  # Two adaptive solves at rtol = atol = 1e-6 (in t, and in the default angle variable).
  np.testing.assert_allclose(path[-1], x_eps, atol=2e-4)
  assert float(ts[0]) == 1.0 and float(ts[-1]) == pytest.approx(1e-3, rel=1e-4)
  with pytest.raises(ValueError, match="x_T has shape"):
    pc_trajectory(jax.random.key(1), sde, score_fn, (16, 2), n_frames=2, n_steps=20, x_T=x_T)
