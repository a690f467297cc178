"""Score-matching losses checked against closed forms (scorejax.losses, models.mlp).

Monte-Carlo checks compare a mean with its standard error (SE) computed from the
same samples: |mean - expected| < 4 SE for an unbiased estimator, and a
"significantly nonzero" check > 8 SE where a wrong loss must differ. Seeds are fixed.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from scorejax import losses
from scorejax.toy import distances as sample_metrics
from scorejax.toy import mixture as analytic
from scorejax import sde as sde_lib
from scorejax.models import mlp
from scorejax.models.score_fn import get_score_fn

SDES = {
    "ve": sde_lib.VESDE(sigma_min=0.01, sigma_max=50.0),
    "vp": sde_lib.VPSDE(),
    "subvp": sde_lib.subVPSDE(),
}


def _mean_se(v: jax.Array) -> tuple[np.ndarray, np.ndarray]:
  """Mean and standard error over the leading axis."""
  v = np.asarray(v, np.float64)
  return v.mean(0), v.std(0, ddof=1) / math.sqrt(v.shape[0])


def _mix():
  return analytic.imbalanced_mixture_2d()


# --- DSM: the gradient at the true score vanishes ([SDE] Eq. 7) ---------------------------

def _features(x: jax.Array) -> jax.Array:
  """(K, B, D) fixed, bounded features phi_k(x) of the perturbation family."""
  return jnp.stack([jnp.tanh(x), jnp.ones_like(x), jnp.sin(x)])


def _perturbed_score_fn(mix, sde, theta):
  """score_theta(x, t) = exact(x, t) + sum_k theta_k phi_k(x): a linear family around the truth."""
  exact = analytic.marginal_score_fn(mix, sde)
  return lambda x, t: exact(x, t) + jnp.tensordot(theta, _features(x), axes=1)


def _per_example_grads(loss_name, sde, lw, mix, theta, key, x0):
  """(B, K) per-example gradients d loss_i / d theta (forward mode: K passes)."""
  def per_example(th):
    score_fn = _perturbed_score_fn(mix, sde, th)
    if loss_name == "dsm":
      return losses.dsm_losses(score_fn, sde, key, x0, likelihood_weighting=lw)
    return losses.sliced_sde_losses(score_fn, sde, key, x0, likelihood_weighting=lw,
                                    variance_reduction=True)
  return jax.jacfwd(per_example)(theta)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _grads(loss_name, sde, lw, theta, key, mix):
  k_data, k_loss = jax.random.split(key)
  x0 = mix.sample(k_data, 16384)
  return _per_example_grads(loss_name, sde, lw, mix, theta, k_loss, x0)


@pytest.mark.parametrize("likelihood_weighting", [False, True], ids=["std2", "g2"])
@pytest.mark.parametrize("sde_name", sorted(SDES))
def test_dsm_gradient_vanishes_at_exact_score(sde_name, likelihood_weighting):
  sde = SDES[sde_name]
  key = jax.random.key(0)
  mean, se = _mean_se(_grads("dsm", sde, likelihood_weighting, jnp.zeros(3), key, _mix()))
  np.testing.assert_array_less(np.abs(mean), 4 * se)
  # Away from the truth the expected gradient is clearly nonzero (the test has power).
  mean, se = _mean_se(_grads("dsm", sde, likelihood_weighting, jnp.full(3, 0.2), key, _mix()))
  assert np.max(np.abs(mean) / se) > 8, (mean, se)


@pytest.mark.parametrize("sde_name", ["ve", "vp"])
def test_sliced_sde_loss_has_dsm_gradient(sde_name):
  """sliced_sde_loss = DSM + const in expectation: equal gradients everywhere, zero at the truth."""
  sde = SDES[sde_name]
  mean, se = _mean_se(_grads("sliced", sde, False, jnp.zeros(3), jax.random.key(1), _mix()))
  np.testing.assert_array_less(np.abs(mean), 4 * se)
  theta = jnp.array([0.3, -0.2, 0.1])
  m_ssm, se_ssm = _mean_se(_grads("sliced", sde, False, theta, jax.random.key(2), _mix()))
  m_dsm, se_dsm = _mean_se(_grads("dsm", sde, False, theta, jax.random.key(3), _mix()))
  np.testing.assert_array_less(np.abs(m_ssm - m_dsm), 4 * np.hypot(se_ssm, se_dsm))
  assert np.max(np.abs(m_dsm) / se_dsm) > 8


# --- sliced vs exact score matching ([SSM] Eqs. 8, 9; [H05] Eq. 4) -------------------------

DIM = 4


def _gaussian(key, n):
  """Samples of N(mu, Sigma) in DIM dimensions, with mu and Sigma."""
  k_a, k_x = jax.random.split(jax.random.key(123))
  a = jax.random.normal(k_a, (DIM, DIM)) / math.sqrt(DIM)
  cov = a @ a.T + 0.5 * jnp.eye(DIM)
  mu = jnp.linspace(-1.0, 1.0, DIM)
  x = mu[None] + jax.random.normal(key, (n, DIM)) @ jnp.linalg.cholesky(cov).T
  return x, mu, cov


def _nonlinear_score(x):
  """A fixed, non-optimal score with a non-symmetric Jacobian: -A x + b + tanh(W x)."""
  a = jnp.eye(DIM) + 0.3 * jnp.triu(jnp.ones((DIM, DIM)), 1)
  w = jnp.arange(DIM * DIM, dtype=jnp.float32).reshape(DIM, DIM) / (DIM * DIM) - 0.4
  return -a @ x + 0.5 + jnp.tanh(w @ x)


@pytest.mark.parametrize("projection,variance_reduction,n_projections", [
    ("gaussian", False, 1), ("rademacher", False, 1), ("gaussian", True, 1),
    ("rademacher", True, 3)])
def test_sliced_matches_exact_score_matching(projection, variance_reduction, n_projections):
  x, _, _ = _gaussian(jax.random.key(0), 8192)

  @jax.jit
  def both(key, x):
    ssm = losses.sliced_score_matching_losses(
        _nonlinear_score, key, x, projection=projection, n_projections=n_projections,
        variance_reduction=variance_reduction)
    return ssm, losses.exact_score_matching_losses(_nonlinear_score, x)

  ssm, esm = both(jax.random.key(1), x)
  mean, se = _mean_se(ssm - esm)   # paired: the projection noise only
  assert abs(mean) < 4 * se, (mean, se)
  # The batch means agree with the per-example ones.
  np.testing.assert_allclose(
      losses.exact_score_matching_loss(_nonlinear_score, x), np.mean(esm), rtol=1e-5)


def test_exact_score_matching_closed_form_for_linear_score():
  """For s(x) = A x + b: E[tr A + 1/2 ||A x + b||^2] = tr A + 1/2 (tr(A C A^T) + ||A m + b||^2)."""
  x, _, _ = _gaussian(jax.random.key(0), 4096)
  a = jnp.array(np.random.default_rng(0).normal(size=(DIM, DIM)), jnp.float32)
  b = jnp.arange(DIM, dtype=jnp.float32)
  value = jax.jit(losses.exact_score_matching_loss, static_argnums=0)(lambda y: a @ y + b, x)
  xs = np.asarray(x, np.float64)
  m, c = xs.mean(0), np.cov(xs.T, bias=True)
  an, bn = np.asarray(a, np.float64), np.asarray(b, np.float64)
  expected = np.trace(an) + 0.5 * (np.trace(an @ c @ an.T) + np.sum((an @ m + bn) ** 2))
  np.testing.assert_allclose(value, expected, rtol=2e-4)


@pytest.mark.parametrize("objective", ["exact", "sliced_gaussian", "sliced_rademacher_vr"])
def test_linear_score_fit_recovers_gaussian_score(objective):
  """s(x) = A x + b fitted to N(mu, Sigma): the optimum is A = -Sigma^-1, b = Sigma^-1 mu."""
  x, _, _ = _gaussian(jax.random.key(0), 8192)
  xs = np.asarray(x, np.float64)
  prec = np.linalg.inv(np.cov(xs.T, bias=True))   # the optimum for this data set
  a_opt, b_opt = -prec, prec @ xs.mean(0)

  def loss(params, key):
    score = lambda y: params["a"] @ y + params["b"]
    if objective == "exact":
      return losses.exact_score_matching_loss(score, x)
    projection = objective.split("_")[1]
    return losses.sliced_score_matching_loss(score, key, x, projection=projection,
                                             variance_reduction=objective.endswith("vr"))

  steps = 1500
  opt = optax.adam(optax.exponential_decay(3e-2, steps, 1e-3))
  params = {"a": jnp.zeros((DIM, DIM)), "b": jnp.zeros(DIM)}

  @jax.jit
  def fit(params, key):
    def step(carry, k):
      params, opt_state = carry
      g = jax.grad(loss)(params, k)
      updates, opt_state = opt.update(g, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None
    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, steps))
    return params

  params = fit(params, jax.random.key(1))
  rel = lambda est, ref: np.linalg.norm(np.asarray(est) - ref) / np.linalg.norm(ref)
  tol = 1e-3 if objective == "exact" else 0.03
  assert rel(params["a"], a_opt) < tol, (params["a"], a_opt)
  assert rel(params["b"], b_opt) < tol, (params["b"], b_opt)


# --- training losses through get_sde_loss_fn ---------------------------------------------

DATA_STD = 1.0   # data N(0, DATA_STD^2 I) for the closed forms below
D = 2


class _ExactGaussianModel(nn.Module):
  """Outputs what a perfect network would for data N(0, DATA_STD^2 I), given score_sde's labels.

  VE continuous: labels sigma, output the score; VP/sub-VP continuous: labels 999 t,
  output the noise prediction -std * score; SMLD: labels index the decreasing sigmas;
  DDPM: labels index alphabar, output the noise prediction.
  """
  sde: sde_lib.SDE
  continuous: bool

  @nn.compact
  def __call__(self, x, labels, train):
    self.param("unused", nn.initializers.zeros, ())
    s2 = DATA_STD**2
    lab = labels[:, None]
    if isinstance(self.sde, sde_lib.VESDE):
      sigma = lab if self.continuous else self.sde.discrete_sigmas[::-1][labels][:, None]
      return -x / (s2 + sigma**2)
    if self.continuous:
      alpha, std = self.sde.marginal_coeffs(lab / 999.0)
      return std * x / (alpha**2 * s2 + std**2)
    abar = self.sde.alphas_cumprod[labels][:, None]
    return jnp.sqrt(1 - abar) * x / (abar * s2 + 1 - abar)


def _expected_loss(sde, continuous, lw, eps=1e-5):
  """E[loss] at the exact score: 1/2 D E_t[lambda(t)/std^2 * alpha^2 s^2 / (alpha^2 s^2 + std^2)].

  (score * std + z has per-dimension variance alpha^2 s^2 / (alpha^2 s^2 + std^2);
  DDPM's eps-prediction error the same with alpha^2 = abar, std^2 = 1 - abar.)
  """
  s2 = DATA_STD**2
  if continuous:
    t = np.linspace(eps, sde.T, 200001)
    alpha, std = (np.asarray(v, np.float64) for v in sde.marginal_coeffs(jnp.asarray(t)))
    w = np.asarray(sde.diffusion_coeff(jnp.asarray(t)), np.float64) ** 2 / std**2 if lw else 1.0
    f = w * alpha**2 * s2 / (alpha**2 * s2 + std**2)
    return 0.5 * D * np.trapezoid(f, t) / (sde.T - eps)
  if isinstance(sde, sde_lib.VESDE):
    sig2 = np.asarray(sde.discrete_sigmas, np.float64) ** 2
    return 0.5 * D * np.mean(s2 / (s2 + sig2))
  abar = np.asarray(sde.alphas_cumprod, np.float64)
  return 0.5 * D * np.mean(abar * s2 / (abar * s2 + 1 - abar))


@pytest.mark.parametrize("sde_name,continuous,lw", [
    ("ve", True, False), ("ve", True, True), ("vp", True, False), ("subvp", True, False),
    ("ve", False, False), ("vp", False, False)])
def test_loss_at_exact_model_matches_closed_form(sde_name, continuous, lw):
  sde = SDES[sde_name]
  model = _ExactGaussianModel(sde, continuous)
  loss_fn = losses.get_sde_loss_fn(sde, model, continuous=continuous, likelihood_weighting=lw)
  params = {"unused": jnp.zeros(())}

  @jax.jit
  def batch_losses(key):
    def one(k):
      k_data, k_loss = jax.random.split(k)
      x0 = DATA_STD * jax.random.normal(k_data, (4096, D))
      return loss_fn(params, {}, k_loss, x0)[0]
    return jax.vmap(one)(jax.random.split(key, 32))

  mean, se = _mean_se(batch_losses(jax.random.key(0)))
  expected = _expected_loss(sde, continuous, lw)
  assert abs(mean - expected) < 4 * se, (mean, expected, se)


MLP_CASES = {  # (sde, continuous, embedding_type, scale_by_sigma)
    "ve_continuous": ("ve", True, "fourier", True),
    "vp_continuous": ("vp", True, "positional", False),
    "subvp_continuous": ("subvp", True, "positional", False),
    "ve_smld": ("ve", False, "positional", False),
    "vp_ddpm": ("vp", False, "positional", False),
}


@pytest.mark.parametrize("case,reduce_mean", [(c, False) for c in sorted(MLP_CASES)]
                         + [("vp_continuous", True), ("ve_smld", True)])
def test_mlp_losses_run_under_jit(case, reduce_mean):
  """Each loss runs jitted with the MLP; at init (output 0) it is 1/2 E||z||^2 (or per-dim mean)."""
  sde_name, continuous, embedding, scale_by_sigma = MLP_CASES[case]
  sde = SDES[sde_name]
  model = mlp.MLPScore(nf=32, num_layers=2, embedding_type=embedding,
                       scale_by_sigma=scale_by_sigma, dropout=0.1)
  x0 = analytic.imbalanced_mixture_2d().sample(jax.random.key(0), 2048)
  labels = jnp.ones(x0.shape[0])
  params = model.init(jax.random.key(1), x0, labels, train=False)["params"]
  loss_fn = losses.get_sde_loss_fn(sde, model, continuous=continuous, reduce_mean=reduce_mean)
  (loss, state), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
      params, {}, jax.random.key(2), x0)
  assert state == {}
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  assert any(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads))
  # Zero output: score * std + z = z (SMLD: sigma^2 (noise / sigma^2)^2 = z^2; DDPM: -z).
  # Per example 1/2 sum z^2 (mean 1, sd 1 for D = 2) or mean z^2 (mean 1, sd 1/sqrt 2).
  expected = 1.0 if reduce_mean else 0.5 * D
  assert abs(float(loss) - expected) < 4 / math.sqrt(x0.shape[0])


def test_subvp_discrete_raises():
  with pytest.raises(ValueError, match=r"training\.continuous.*training\.sde"):
    losses.get_sde_loss_fn(SDES["subvp"], mlp.MLPScore(), continuous=False)
  with pytest.raises(ValueError, match="likelihood_weighting"):
    losses.get_sde_loss_fn(SDES["vp"], mlp.MLPScore(), continuous=False, likelihood_weighting=True)


def test_mlp_build_and_convert():
  import ml_collections
  config = ml_collections.ConfigDict({"model": {
      "name": "mlp", "nf": 16, "num_layers": 1, "embedding_type": "Fourier",
      "scale_by_sigma": True}})
  model = mlp.build(config)
  assert (model.nf, model.num_layers, model.embedding_type, model.scale_by_sigma) == (
      16, 1, "fourier", True)
  x = jnp.ones((3, 2, 2, 1))
  y = model.apply(model.init(jax.random.key(0), x, jnp.ones(3), train=False), x,
                  jnp.full(3, 2.0), train=False)
  assert y.shape == x.shape
  with pytest.raises(NotImplementedError, match="checkpoint"):
    mlp.convert({}, config)
  config.model.embedding_type = "learned"
  with pytest.raises(ValueError, match="fourier"):
    mlp.build(config)


# --- end to end: train the MLP on the 2-D imbalanced mixture, sample, count modes -------

def _train_mlp(sde, model, objective, *, seed, steps=3000, batch_size=256, lr=2e-3):
  """Adam (cosine decay) on fresh mixture samples each step; lax.scan over 500-step chunks."""
  mix = analytic.imbalanced_mixture_2d()
  k_init, k_train = jax.random.split(jax.random.key(seed))
  params = model.init(k_init, jnp.zeros((1, 2)), jnp.ones((1,)), train=False)["params"]
  opt = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.05))
  if objective == "dsm":
    loss_fn = losses.get_sde_loss_fn(sde, model)
  else:
    def loss_fn(params, model_state, key, batch):
      score_fn = get_score_fn(sde, model, {"params": params, **model_state})
      return losses.sliced_sde_loss(score_fn, sde, key, batch, projection="rademacher",
                                    variance_reduction=True), model_state

  def step(carry, key):
    params, opt_state = carry
    k_data, k_loss = jax.random.split(key)
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, {}, k_loss, mix.sample(k_data, batch_size))
    updates, opt_state = opt.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  @jax.jit
  def train_chunk(carry, key):
    return jax.lax.scan(step, carry, jax.random.split(key, 500))

  carry = (params, opt.init(params))
  for i in range(steps // 500):
    carry, loss = train_chunk(carry, jax.random.fold_in(k_train, i))
    assert bool(jnp.all(jnp.isfinite(loss)))
  return carry[0]


# 4000 samples: the weight estimate's SE is sqrt(0.2 * 0.8 / 4000) = 0.006, so a
# model with the right weights passes TV <= 0.05 by ~8 SE.
N_SAMPLES = 4000


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["dsm", "sliced"])
def test_mlp_trained_on_imbalanced_mixture_recovers_weights_vp(objective):
  from scorejax.sampling import ode_sample
  mix = analytic.imbalanced_mixture_2d()
  sde = SDES["vp"]
  model = mlp.MLPScore(nf=64, num_layers=2, embedding_type="positional")
  params = _train_mlp(sde, model, objective, seed=0)
  score_fn = get_score_fn(sde, model, {"params": params})
  x, _ = jax.jit(lambda k: ode_sample(k, sde, score_fn, (N_SAMPLES, 2), rtol=1e-3, atol=1e-3))(
      jax.random.key(7))
  assert bool(jnp.all(jnp.isfinite(x)))
  tv = float(sample_metrics.weights_total_variation(mix, x))
  assert tv <= 0.05, (tv, sample_metrics.component_frequencies(mix, x))


@pytest.mark.slow
def test_mlp_trained_on_imbalanced_mixture_recovers_weights_ve():
  """VE with sigma labels needs the Fourier embedding of log sigma and scale_by_sigma."""
  from scorejax.sampling import pc_sample
  mix = analytic.imbalanced_mixture_2d()
  sde = SDES["ve"]
  model = mlp.MLPScore(nf=64, num_layers=2, embedding_type="fourier", scale_by_sigma=True)
  params = _train_mlp(sde, model, "dsm", seed=0)
  score_fn = get_score_fn(sde, model, {"params": params})
  x, _ = jax.jit(lambda k: pc_sample(k, sde, score_fn, (N_SAMPLES, 2), corrector=None,
                                     n_steps=500))(jax.random.key(7))
  assert bool(jnp.all(jnp.isfinite(x)))
  tv = float(sample_metrics.weights_total_variation(mix, x))
  assert tv <= 0.05, (tv, sample_metrics.component_frequencies(mix, x))
