"""Gaussian mixtures: exact densities, scores and SDE marginals — the test oracle.

For data x_0 ~ sum_k w_k N(mu_k, diag(v_k)) and any SDE of `scorejax.sde` (whose
transition kernel is N(alpha(t) x_0, std(t)^2 I)), the marginal at time t is again a
mixture,

    p_t(x) = sum_k w_k N(x; alpha(t) mu_k, diag(alpha(t)^2 v_k + std(t)^2)),

so its score grad_x log p_t(x) = sum_k r_k(x) (alpha mu_k - x) / (alpha^2 v_k + std^2)
with responsibilities r_k(x) (Bishop 2006, Eq. 9.13) is exact. Samplers, the
likelihood and the losses are tested against these closed forms. Conditioned on
linear measurements y = A x + noise (`linear_log_posterior`, `sample_given_linear`)
it is again a mixture in closed form: the oracle of the inverse-problem solvers.

Note on VE: like the reference implementation, `VESDE.marginal_prob` uses std =
sigma(t), i.e. it treats the data as already perturbed by N(0, sigma_min^2) at
t = 0; `marginal(sde, 0)` is that perturbed mixture, consistent with the SDE's
score and the SMLD chain.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from scorejax import sde as sde_lib

Array = jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GaussianMixture:
  """sum_k w_k N(mu_k, diag(v_k)) over flat vectors of dimension D.

  Attributes:
    weights: (K,) mixture weights, summing to 1.
    means: (K, D) component means.
    variances: (K, D) diagonal covariances (isotropic components repeat one value).
  """
  weights: Array
  means: Array
  variances: Array

  @property
  def dim(self) -> int:
    return self.means.shape[-1]

  @property
  def num_components(self) -> int:
    return self.means.shape[0]

  # --- per-example closed forms (x: (D,)) --------------------------------------
  def _component_logps(self, x: Array) -> Array:
    """log w_k + log N(x; mu_k, diag v_k) for every k: (K,)."""
    chex.assert_shape(x, (self.dim,))
    quad = jnp.sum(jnp.square(x[None] - self.means) / self.variances, axis=-1)
    logdet = jnp.sum(jnp.log(self.variances), axis=-1)
    return jnp.log(self.weights) - 0.5 * (quad + logdet + self.dim * math.log(2 * math.pi))

  def log_prob_single(self, x: Array) -> Array:
    return jax.nn.logsumexp(self._component_logps(x))

  def score_single(self, x: Array) -> Array:
    r = jax.nn.softmax(self._component_logps(x))
    return jnp.sum(r[:, None] * (self.means - x[None]) / self.variances, axis=0)

  # --- batched (x: (B, D)) ---------------------------------------------------------
  def log_prob(self, x: Array) -> Array:
    """(B,) exact log-density in nats."""
    return jax.vmap(self.log_prob_single)(x)

  def score(self, x: Array) -> Array:
    """(B, D) exact grad_x log p(x)."""
    return jax.vmap(self.score_single)(x)

  def responsibilities(self, x: Array) -> Array:
    """(B, K) posterior component probabilities r_k(x)."""
    return jax.vmap(lambda xi: jax.nn.softmax(self._component_logps(xi)))(x)

  def log_responsibilities(self, x: Array) -> Array:
    """(B, K) log r_k(x) = log p(k | x)."""
    return jax.vmap(lambda xi: jax.nn.log_softmax(self._component_logps(xi)))(x)

  def component(self, k: int) -> "GaussianMixture":
    """Component k alone, as a one-component mixture (the class-conditional p(x | k))."""
    return GaussianMixture(jnp.ones((1,), self.weights.dtype), self.means[k:k + 1],
                           self.variances[k:k + 1])

  def sample_with_labels(self, key: Array, n: int) -> tuple[Array, Array]:
    """n exact samples (n, D) and their component labels (n,)."""
    k_comp, k_noise = jax.random.split(key)
    labels = jax.random.categorical(k_comp, jnp.log(self.weights), shape=(n,))
    z = jax.random.normal(k_noise, (n, self.dim))
    return self.means[labels] + jnp.sqrt(self.variances[labels]) * z, labels

  def sample(self, key: Array, n: int) -> Array:
    return self.sample_with_labels(key, n)[0]

  # --- conditioning on known coordinates (diagonal covariances) ----------------------
  def known_log_posterior(self, y: Array, known: Array) -> Array:
    """(B, K) log p(k | x_d = y_d for the known d), for y (B, D) and known (B, D) or (D,).

    With diagonal covariances the coordinates are independent given k, so (Bishop
    2006, Sec. 2.3.2 per component, and Eq. 9.13) the posterior weights are

        p(k | y_known) ∝ w_k prod_{d known} N(y_d; mu_kd, v_kd),

    and given k the unknown coordinates stay N(mu_kd, v_kd), independent of y.
    """
    chex.assert_rank(y, 2)
    known = jnp.broadcast_to(jnp.asarray(known, bool), y.shape)
    logn = -0.5 * (jnp.square(y[:, None] - self.means[None]) / self.variances[None]
                   + jnp.log(2 * math.pi * self.variances[None]))
    logits = jnp.log(self.weights)[None] + jnp.sum(jnp.where(known[:, None], logn, 0.0), axis=-1)
    return jax.nn.log_softmax(logits, axis=-1)

  def sample_given_known(self, key: Array, y: Array, known: Array) -> Array:
    """Exact draws of p(x | x_d = y_d for the known d): y where known, the rest drawn."""
    k_comp, k_noise = jax.random.split(key)
    known = jnp.broadcast_to(jnp.asarray(known, bool), y.shape)
    labels = jax.random.categorical(k_comp, self.known_log_posterior(y, known), axis=-1)
    z = jax.random.normal(k_noise, y.shape)
    return jnp.where(known, y, self.means[labels] + jnp.sqrt(self.variances[labels]) * z)

  # --- conditioning on linear measurements y = A x + noise ---------------------------------
  def _linear_parts(self, matrix: Array, noise_std: float | Array):
    """Per component: (A mu_k (K, M), Cholesky of S_k = A V_k A^T + s^2 I (K, M, M),
    gain G_k = V_k A^T S_k^{-1} (K, D, M))."""
    a = jnp.asarray(matrix, self.means.dtype)
    chex.assert_shape(a, (None, self.dim))
    m = a.shape[0]
    mean_y = self.means @ a.T
    av = a[None] * self.variances[:, None, :]  # A V_k: (K, M, D)
    cov_y = jnp.einsum("kmd,nd->kmn", av, a) + jnp.square(noise_std) * jnp.eye(m, dtype=a.dtype)[None]
    chol = jnp.linalg.cholesky(cov_y)
    # G_k^T = S_k^{-1} A V_k (S_k symmetric): two triangular solves per component.
    solve = jax.vmap(lambda l, b: jax.scipy.linalg.cho_solve((l, True), b))
    gain = jnp.swapaxes(solve(chol, av), 1, 2)
    return mean_y, chol, gain

  def linear_log_posterior(self, y: Array, matrix: Array, noise_std: float | Array) -> Array:
    """(B, K) log p(k | y) for measurements y (B, M) = A x + noise_std n of x ~ self.

    Per component the measurement is Gaussian (Bishop 2006, Eq. 2.115, the marginal of a
    linear-Gaussian model): y | k ~ N(A mu_k, A V_k A^T + noise_std^2 I), so the posterior
    weights are p(k | y) ∝ w_k N(y; A mu_k, A V_k A^T + noise_std^2 I).
    """
    chex.assert_rank(y, 2)
    mean_y, chol, _ = self._linear_parts(matrix, noise_std)

    def log_normal(r, l):  # log N(r; 0, L L^T)
      z = jax.scipy.linalg.solve_triangular(l, r, lower=True)
      return -0.5 * (jnp.sum(z**2) + 2 * jnp.sum(jnp.log(jnp.diagonal(l)))
                     + r.shape[0] * math.log(2 * math.pi))

    per = jax.vmap(lambda yi: jax.vmap(log_normal)(yi[None] - mean_y, chol))(y)  # (B, K)
    return jax.nn.log_softmax(jnp.log(self.weights)[None] + per, axis=-1)

  def sample_given_linear(self, key: Array, y: Array, matrix: Array,
                          noise_std: float | Array) -> Array:
    """Exact draws (B, D) of p(x | y) for y (B, M) = A x + noise_std n.

    The component k from `linear_log_posterior`; given k, x | y is Gaussian (Bishop 2006,
    Eq. 2.116) and is drawn by conditioning a joint draw (Matheron's rule, e.g. Wilson et
    al. 2020, Eq. 4): x' ~ N(mu_k, V_k), y' = A x' + noise_std n, x = x' + G_k (y - y') with
    the gain G_k = V_k A^T (A V_k A^T + noise_std^2 I)^{-1}.
    """
    chex.assert_rank(y, 2)
    a = jnp.asarray(matrix, self.means.dtype)
    k_comp, k_x, k_n = jax.random.split(key, 3)
    labels = jax.random.categorical(k_comp, self.linear_log_posterior(y, a, noise_std), axis=-1)
    _, _, gain = self._linear_parts(a, noise_std)
    x_prior = self.means[labels] + jnp.sqrt(self.variances[labels]) * jax.random.normal(
        k_x, (y.shape[0], self.dim), self.means.dtype)
    y_prior = x_prior @ a.T + noise_std * jax.random.normal(k_n, y.shape, self.means.dtype)
    return x_prior + jnp.einsum("bdm,bm->bd", gain[labels], y - y_prior)

  def affine(self, alpha: Array, std: Array) -> "GaussianMixture":
    """Law of alpha x + std z for x ~ self, z ~ N(0, I)."""
    return GaussianMixture(self.weights, alpha * self.means,
                           alpha**2 * self.variances + std**2)

  def marginal(self, sde: sde_lib.SDE, t: Array) -> "GaussianMixture":
    """The exact marginal p_t of the forward SDE started from this mixture (scalar t)."""
    alpha, std = sde.marginal_coeffs(jnp.asarray(t, jnp.float32))
    return self.affine(alpha, std)


def _flat(x: Array) -> Array:
  return x.reshape(x.shape[0], -1)


def marginal_score_fn(mix: GaussianMixture, sde: sde_lib.SDE) -> Callable[[Array, Array], Array]:
  """Exact `score_fn(x, t)` of the SDE's marginals: x (B, *shape) with prod(shape) = D."""
  def score_fn(x: Array, t: Array) -> Array:
    s = jax.vmap(lambda xi, ti: mix.marginal(sde, ti).score_single(xi))(_flat(x), t)
    return s.reshape(x.shape)
  return score_fn


def marginal_log_posterior_fn(mix: GaussianMixture, sde: sde_lib.SDE) -> Callable[[Array, Array], Array]:
  """Exact `log_prob_fn(x, t) -> (B, K)`: log p_t(k | x), the components taken as classes.

  The time-dependent class posterior of classifier guidance ([SDE] Eq. 14): the
  responsibilities of the marginal mixture p_t = sum_k w_k p_t(x | k).
  """
  def log_prob_fn(x: Array, t: Array) -> Array:
    return jax.vmap(lambda xi, ti: mix.marginal(sde, ti).log_responsibilities(xi[None])[0])(
        _flat(x), t)
  return log_prob_fn


def marginal_log_prob_fn(mix: GaussianMixture, sde: sde_lib.SDE) -> Callable[[Array, Array], Array]:
  """Exact `log_prob(x, t) -> (B,)` of the SDE's marginals."""
  def log_prob(x: Array, t: Array) -> Array:
    return jax.vmap(lambda xi, ti: mix.marginal(sde, ti).log_prob_single(xi))(_flat(x), t)
  return log_prob


def perturbed_score_fn(mix: GaussianMixture) -> Callable[[Array, Array], Array]:
  """Exact `score_fn_sigma(x, sigma)` of q_sigma = p * N(0, sigma^2 I), sigma shaped (B,).

  NCSN's noise-conditional target (Song & Ermon 2019, Sec. 4.1, Eq. 5): the mixture
  convolved with isotropic Gaussian noise is the mixture with variances v_k + sigma^2,
  so this is the exact input of annealed Langevin dynamics (`sampling.annealed_langevin`).
  """
  def score_fn_sigma(x: Array, sigma: Array) -> Array:
    sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), (x.shape[0],))
    s = jax.vmap(lambda xi, si: mix.affine(1.0, si).score_single(xi))(_flat(x), sigma)
    return s.reshape(x.shape)
  return score_fn_sigma


def flow_model_log_prob(mix: GaussianMixture, sde: sde_lib.SDE, x: Array, z: Array,
                        eps: float) -> Array:
  """Exact log-density of x under the probability-flow model integrated from eps to T.

  With the exact score the ODE maps p_eps to p_T exactly, so the model that draws
  z ~ pi and integrates back has log p(x) = log p_eps(x) + log pi(z) - log p_T(z),
  where z is x's image at T.
  """
  log_p = marginal_log_prob_fn(mix, sde)
  b = x.shape[0]
  return (log_p(x, jnp.full((b,), eps)) + sde.prior_logp(z)
          - log_p(z, jnp.full((b,), sde.T)))


# --- standard mixtures --------------------------------------------------------------

def isotropic_mixture(weights, means, stds) -> GaussianMixture:
  """Mixture with isotropic components: stds is a scalar or (K,)."""
  total = float(np.sum(np.asarray(weights, np.float64)))  # host values: also fine under jit
  if not np.isclose(total, 1.0, atol=1e-5):
    raise ValueError(f"mixture weights must sum to 1, got {total}")
  weights = jnp.asarray(weights, jnp.float32)
  means = jnp.asarray(means, jnp.float32)
  stds = jnp.broadcast_to(jnp.asarray(stds, jnp.float32), weights.shape)
  variances = jnp.broadcast_to((stds**2)[:, None], means.shape)
  return GaussianMixture(weights / jnp.sum(weights), means, variances)


def imbalanced_mixture_2d() -> GaussianMixture:
  """Two modes with weights 0.2 / 0.8 at (-1.5, -1.5) and (1.5, 1.5), std 0.35.

  Modes are far apart relative to their width, so each sample is assigned to its
  mode without ambiguity and weight errors are visible.
  """
  return isotropic_mixture([0.2, 0.8], [[-1.5, -1.5], [1.5, 1.5]], 0.35)


def song_ermon_mixture(w_small: float = 0.1, mode: float = 5.0, std: float = 1.0) -> GaussianMixture:
  """Two far-apart 2-D modes w N((-m,-m), I) + (1-w) N((m,m), I) (Song & Ermon 2019, Sec. 3.2).

  Their Fig. 3 uses w = 1/5; plain Langevin dynamics cannot get the weights right
  because the modes are separated by a region of vanishing density.
  """
  return isotropic_mixture([w_small, 1 - w_small], [[-mode, -mode], [mode, mode]], std)


def eight_gaussians(radius: float = 2.0, std: float = 0.1) -> GaussianMixture:
  """Eight equal modes on a circle."""
  angles = 2 * np.pi * np.arange(8) / 8
  means = radius * np.stack([np.cos(angles), np.sin(angles)], -1)
  return isotropic_mixture(np.full(8, 1 / 8), means, std)


def high_dim_mixture(key: Array, dim: int = 32, num_components: int = 4,
                     separation: float = 3.0, std: float = 0.5,
                     weights=None) -> GaussianMixture:
  """A D-dimensional mixture with unequal weights and diagonal covariances.

  Means are random directions scaled to norm `separation` (so modes are
  ~separation*sqrt(2) apart, many stds in every projection); per-coordinate
  stds vary in [0.5, 1.5] x `std`.
  """
  if weights is None:
    weights = np.arange(1, num_components + 1, dtype=np.float64)
    weights = weights / weights.sum()
  k_mu, k_var = jax.random.split(key)
  directions = jax.random.normal(k_mu, (num_components, dim))
  means = separation * directions / jnp.linalg.norm(directions, axis=-1, keepdims=True)
  scales = std * jax.random.uniform(k_var, (num_components, dim), minval=0.5, maxval=1.5)
  return GaussianMixture(jnp.asarray(weights, jnp.float32), means, scales**2)
