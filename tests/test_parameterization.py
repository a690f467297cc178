"""Score <-> noise <-> data <-> velocity conversions against the Gaussian-mixture oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scorejax import parameterization
from scorejax.toy import mixture as analytic
from scorejax import sde as sde_lib
from scorejax.models import get_score_fn, labels_and_std

SDES = {"ve": sde_lib.VESDE(), "vp": sde_lib.VPSDE(), "subvp": sde_lib.subVPSDE(),
        "cosine": sde_lib.CosineVPSDE()}


def _posterior_mean_x0(mix, sde, x, t):
  """E[x_0 | x_t] of a diagonal Gaussian mixture in closed form (per component, Bishop 2006 Eq. 2.116)."""
  def single(xi, ti):
    alpha, sigma = sde.marginal_coeffs(ti)
    r = mix.marginal(sde, ti).responsibilities(xi[None])[0]
    gain = mix.variances * alpha / (alpha**2 * mix.variances + sigma**2)
    return jnp.sum(r[:, None] * (mix.means + gain * (xi[None] - alpha * mix.means)), axis=0)
  return jax.vmap(single)(x, t)


@pytest.mark.parametrize("name", list(SDES))
def test_conversions_match_the_exact_posterior(name):
  sde = SDES[name]
  mix = analytic.imbalanced_mixture_2d()
  t = jnp.linspace(0.05, 0.9 * sde.T, 16)
  x = mix.marginal(sde, 0.3).sample(jax.random.key(0), 16)
  score = analytic.marginal_score_fn(mix, sde)(x, t)
  alpha, sigma = (sde_lib.batch_broadcast(v, x) for v in sde.marginal_coeffs(t))

  x0 = parameterization.x0_from_score(x, score, alpha, sigma)
  np.testing.assert_allclose(x0, _posterior_mean_x0(mix, sde, x, t), rtol=1e-4, atol=1e-4)
  eps = parameterization.eps_from_score(score, sigma)
  # x = alpha E[x0 | x] + sigma E[z | x]: the two predictions are consistent.
  np.testing.assert_allclose(alpha * x0 + sigma * eps, x, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(parameterization.x0_from_eps(x, eps, alpha, sigma), x0, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(parameterization.eps_from_x0(x, x0, alpha, sigma), eps, rtol=1e-3, atol=1e-4)
  np.testing.assert_allclose(parameterization.score_from_x0(x, x0, alpha, sigma), score, rtol=1e-3, atol=1e-3)
  v = parameterization.v_from_eps_x0(eps, x0, alpha, sigma)
  np.testing.assert_allclose(parameterization.eps_from_v(x, v, alpha, sigma), eps, rtol=1e-3, atol=1e-4)
  for kind, out in {"score": score, "eps": eps, "x0": x0, "v": v}.items():
    np.testing.assert_allclose(parameterization.score_from_output(kind, x, out, alpha, sigma), score,
                               rtol=2e-3, atol=2e-3, err_msg=kind)


def test_unknown_output_kind():
  with pytest.raises(ValueError, match="eps"):
    parameterization.score_from_output("noise", jnp.ones(2), jnp.ones(2), 1.0, 1.0)


class _OracleNetwork:
  """A stand-in for a flax module: outputs the exact quantity score_sde's network would."""

  def __init__(self, sde, mix):
    self.sde, self.mix = sde, mix

  def apply(self, variables, x, labels, train=False, rngs=None):
    del variables, train, rngs
    # Invert the labels of continuous training to the time they encode.
    if self.sde.model_output == "score":  # VE: labels are sigma(t)
      t = self.sde.t_of_log_snr(-jnp.log(labels))
    else:  # VP family: labels are 999 t
      t = labels / 999.0
    score = analytic.marginal_score_fn(self.mix, self.sde)(x, t)
    if self.sde.model_output == "score":
      return score
    return -sde_lib.batch_broadcast(self.sde.sigma(t), x) * score


@pytest.mark.parametrize("name", list(SDES))
def test_get_score_fn_reads_the_sde_parameterization(name):
  sde = SDES[name]
  mix = analytic.imbalanced_mixture_2d()
  x = mix.sample(jax.random.key(1), 8) * 1.5
  t = jnp.linspace(0.1, 0.8 * sde.T, 8)
  score_fn = get_score_fn(sde, _OracleNetwork(sde, mix), {}, continuous=True)
  np.testing.assert_allclose(score_fn(x, t), analytic.marginal_score_fn(mix, sde)(x, t),
                             rtol=2e-3, atol=2e-3)
  labels, std = labels_and_std(sde, t, True)
  assert labels.shape == (8,) and (std is None) == (sde.model_output == "score")


def test_discrete_labels_follow_score_sde():
  """SMLD: index of the decreasing sigma table; DDPM: the step index with std sqrt(1 - alphabar_i)."""
  ve, vp, subvp = SDES["ve"], SDES["vp"], SDES["subvp"]
  t = jnp.array([1e-3, 0.5, 1.0])
  np.testing.assert_array_equal(labels_and_std(ve, t, False)[0], np.round((1 - np.asarray(t)) * 999))
  labels, std = labels_and_std(vp, t, False)
  np.testing.assert_array_equal(labels, [0, 499, 999])
  np.testing.assert_allclose(std, np.sqrt(1 - np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)))[[0, 499, 999]],
                             rtol=1e-4)  # float32 1 - alphabar at i = 0
  np.testing.assert_allclose(labels_and_std(subvp, t, False)[0], 999 * np.asarray(t), rtol=1e-6)
