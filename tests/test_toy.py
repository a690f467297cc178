"""scorejax.toy: the 2-D toy sets, the Gaussian-mixture oracle and the sample distances.

The samplers are checked against their geometric definitions, the mixture against
scipy, the distances against cases with known values. Seeds are fixed; Monte-Carlo
bounds are 5 standard errors.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from scorejax import sde as sde_lib
from scorejax.toy import datasets, distances, mixture

N = 20000


def _sample(name: str, seed: int = 0) -> np.ndarray:
  x = np.asarray(datasets.sample_toy(name, jax.random.key(seed), N), np.float64)
  assert x.shape == (N, 2) and np.all(np.isfinite(x))
  return x


def _within_5_se(fraction: np.ndarray, p: np.ndarray) -> bool:
  return bool(np.all(np.abs(fraction - p) < 5 * np.sqrt(p * (1 - p) / N)))


def _half_circle_distance(p: np.ndarray, upper: bool) -> np.ndarray:
  """Distance to the unit half circle y >= 0 (upper) or y <= 0 (lower) around the origin."""
  on_arc = p[:, 1] >= 0 if upper else p[:, 1] <= 0
  ends = np.minimum(np.linalg.norm(p - [1.0, 0.0], axis=1), np.linalg.norm(p + [1.0, 0.0], axis=1))
  return np.where(on_arc, np.abs(np.linalg.norm(p, axis=1) - 1.0), ends)


def test_two_moons_lie_on_two_half_circles():
  x = _sample("two_moons") + np.array([0.5, 0.25])
  upper = _half_circle_distance(x, upper=True)                   # (cos, sin), theta in [0, pi]
  lower = _half_circle_distance(x - [1.0, 0.5], upper=False)     # (1 - cos, 0.5 - sin)
  assert np.all(np.minimum(upper, lower) < 6 * 0.05)  # noise 0.05; the arcs are 0.5 apart
  assert _within_5_se(np.array([np.mean(upper < lower)]), np.array([0.5]))


def test_rings_have_their_radii_in_proportion_to_circumference():
  r = np.linalg.norm(_sample("rings"), axis=1)
  radii = np.array([0.5, 1.0, 1.5])
  ring = np.argmin(np.abs(r[:, None] - radii[None]), axis=1)
  assert np.all(np.abs(r - radii[ring]) < 6 * 0.03)
  assert _within_5_se(np.bincount(ring, minlength=3) / N, radii / radii.sum())


def test_checkerboard_is_uniform_on_the_dark_squares():
  x = _sample("checkerboard")
  assert np.all(np.abs(x) <= 2.0)
  cell = np.floor(x + 2.0).astype(int)  # 4 x 4 cells of side 1 on [-2, 2]^2
  assert np.all((cell[:, 0] + cell[:, 1]) % 2 == 0)
  counts = np.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16)[[i * 4 + j for i in range(4)
                                                                   for j in range(4) if (i + j) % 2 == 0]]
  assert _within_5_se(counts / N, np.full(8, 1 / 8))


def test_swiss_roll_radius_follows_its_angle():
  x = _sample("swiss_roll")
  r = np.linalg.norm(x, axis=1)
  assert np.all((r > 0.5 - 0.3) & (r < 1.5 + 0.3))  # t / 3pi for t in [1.5 pi, 4.5 pi], noise 0.05
  # On the noise-free roll the angle is t = 3 pi r (mod 2 pi): compare directions.
  t = 3 * math.pi * r
  direction = np.stack([np.cos(t), np.sin(t)], 1)
  # (The radial noise 0.05 moves t by ~0.5 rad; a set that is not this spiral scores ~0.)
  assert np.median(np.sum(direction * x / r[:, None], axis=1)) > 0.8


def test_mixture_toys_sample_their_mixture():
  for name, make in datasets.ANALYTIC_2D.items():
    mix = make()
    x = jnp.asarray(_sample(name), jnp.float32)
    assert float(distances.weights_total_variation(mix, x)) < 0.02, name
  with pytest.raises(ValueError, match="two_moons"):
    datasets.sample_toy("moons", jax.random.key(0), 4)


def test_mixture_density_and_score_against_scipy():
  mix = mixture.isotropic_mixture([0.3, 0.7], [[-1.0, 0.5], [2.0, -1.0]], [0.5, 1.2])
  x = np.random.default_rng(0).normal(size=(7, 2)) * 2
  want = np.log(0.3 * stats.multivariate_normal([-1.0, 0.5], 0.25 * np.eye(2)).pdf(x)
                + 0.7 * stats.multivariate_normal([2.0, -1.0], 1.44 * np.eye(2)).pdf(x))
  np.testing.assert_allclose(mix.log_prob(jnp.asarray(x, jnp.float32)), want, rtol=1e-5, atol=1e-5)
  grad = jax.vmap(jax.grad(lambda xi: mix.log_prob(xi[None])[0]))(jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(mix.score(jnp.asarray(x, jnp.float32)), grad, rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="sum to 1"):
    mixture.isotropic_mixture([0.3, 0.3], [[0.0], [1.0]], 1.0)
  # The SDE marginal at t is the mixture of N(alpha mu_k, alpha^2 v_k + sigma^2).
  sde = sde_lib.VPSDE()
  alpha, sigma = (float(v) for v in sde.marginal_coeffs(jnp.float32(0.4)))
  marginal = mix.marginal(sde, 0.4)
  np.testing.assert_allclose(marginal.means, alpha * np.asarray(mix.means), rtol=1e-6)
  np.testing.assert_allclose(marginal.variances, alpha**2 * np.asarray(mix.variances) + sigma**2, rtol=1e-5)
  np.testing.assert_allclose(marginal.weights, mix.weights)


def test_distances_on_known_cases():
  mix = mixture.imbalanced_mixture_2d()
  x, labels = mix.sample_with_labels(jax.random.key(1), N)
  freq = np.asarray(distances.component_frequencies(mix, x))
  np.testing.assert_allclose(freq, np.bincount(np.asarray(labels), minlength=2) / N)  # modes separate
  assert _within_5_se(freq, np.array([0.2, 0.8]))
  # Half the samples from each mode: TV to (0.2, 0.8) is 0.3.
  xs, ls = np.asarray(x), np.asarray(labels)
  balanced = jnp.asarray(np.concatenate([xs[ls == 0][:1000], xs[ls == 1][:1000]]))
  assert float(distances.weights_total_variation(mix, balanced)) == pytest.approx(0.3, abs=1e-6)
  # Sliced W2: 0 between a set and itself (in any order), |c| / sqrt(2) under a shift c in 2-D.
  key = jax.random.key(2)
  sliced_w2 = jax.jit(distances.sliced_wasserstein2)
  y = x[:2000]  # (XLA's CPU sort is slow; the values below do not depend on the sample size)
  assert float(sliced_w2(key, y, y[::-1])) == pytest.approx(0.0, abs=1e-6)
  shifted = float(sliced_w2(key, y, y + jnp.array([[1.0, 0.0]])))
  assert shifted == pytest.approx(1 / math.sqrt(2), rel=0.1)
  with pytest.raises(ValueError, match="equal shapes"):
    distances.sliced_wasserstein2(key, y, y[:10])


def test_perturbed_score_is_the_ve_marginal_score_at_that_sigma():
  """NCSN's q_sigma = p * N(0, sigma^2 I) is the VE SDE's marginal where sigma(t) = sigma."""
  mix = mixture.imbalanced_mixture_2d()
  sde = sde_lib.VESDE(sigma_min=0.01, sigma_max=50.0)
  sigma = jnp.array([0.05, 0.5, 3.0, 20.0])
  x = jax.random.normal(jax.random.key(0), (4, 2)) * 2.0
  t = sde.t_of_log_snr(-jnp.log(sigma))
  np.testing.assert_allclose(mixture.perturbed_score_fn(mix)(x, sigma),
                             mixture.marginal_score_fn(mix, sde)(x, t), rtol=1e-4, atol=1e-5)
