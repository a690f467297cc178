"""Forward SDEs of score-based generative modeling and their reversals.

Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole, "Score-Based Generative
Modeling through Stochastic Differential Equations", ICLR 2021 (referred to as
[SDE] below).

Every SDE here is affine in x with an isotropic Gaussian transition kernel,

    p_{0t}(x_t | x_0) = N(x_t; alpha(t) x_0, std(t)^2 I),

so each class is defined by scalar functions of time (`drift_coeff`,
`diffusion_coeff`, `marginal_coeffs`); the batched methods of the public API
(`sde`, `marginal_prob`, `discretize`, ...) are thin `vmap`s over them.

Shapes: `x` is a batch `(B, *data_shape)`, `t` is `(B,)`.
SDE objects are frozen dataclasses: hashable, so they can be closed over or passed
as static arguments to `jax.jit`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


def _per_example(x: Array, t: Array) -> None:
  if t.ndim != 1 or x.shape[0] != t.shape[0]:
    raise ValueError(
        f"expected x of shape (B, ...) and t of shape (B,), got x{tuple(x.shape)} "
        f"and t{tuple(t.shape)}")


def _bcast(v: Array, x: Array) -> Array:
  """Reshapes a per-example scalar `(B,)` to broadcast against `x` `(B, ...)`."""
  return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def _gaussian_logp(z: Array, std: float) -> Array:
  """log N(z; 0, std^2 I) per example, summed over all but the batch axis."""
  d = math.prod(z.shape[1:])
  sq = jnp.sum(jnp.square(z).reshape(z.shape[0], -1), axis=-1)
  return -0.5 * d * math.log(2 * math.pi * std**2) - 0.5 * sq / std**2


class SDE:
  """Base class: dx = f(t) x dt + g(t) dw with an isotropic Gaussian kernel.

  Subclasses define the scalar functions `drift_coeff(t)` (f, so the drift is
  f(t) x), `diffusion_coeff(t)` (g), `marginal_coeffs(t)` (alpha, std), the
  prior std, and optionally a discretization.
  """

  T: float = 1.0
  N: int

  # --- scalar time functions (t is a scalar or any array; elementwise) ---------
  def drift_coeff(self, t: Array) -> Array:
    raise NotImplementedError

  def diffusion_coeff(self, t: Array) -> Array:
    raise NotImplementedError

  def marginal_coeffs(self, t: Array) -> tuple[Array, Array]:
    """(alpha(t), std(t)) with p_{0t}(x_t|x_0) = N(alpha x_0, std^2 I)."""
    raise NotImplementedError

  @property
  def prior_std(self) -> float:
    raise NotImplementedError

  # --- public batched API --------------------------------------------------------
  def sde(self, x: Array, t: Array) -> tuple[Array, Array]:
    """Drift f(x, t) and diffusion g(t) of the forward SDE ([SDE] Eq. 5)."""
    _per_example(x, t)
    return _bcast(self.drift_coeff(t), x) * x, self.diffusion_coeff(t)

  def marginal_prob(self, x0: Array, t: Array) -> tuple[Array, Array]:
    """Mean and std of p_{0t}(x_t | x_0) ([SDE] Eqs. 29, 33; App. B)."""
    _per_example(x0, t)
    alpha, std = self.marginal_coeffs(t)
    return _bcast(alpha, x0) * x0, std

  def prior_sampling(self, key: Array, shape: tuple[int, ...]) -> Array:
    """Samples the prior pi = N(0, prior_std^2 I); `shape` includes the batch."""
    return self.prior_std * jax.random.normal(key, shape)

  def prior_logp(self, z: Array) -> Array:
    """log pi(z) per example, in nats."""
    return _gaussian_logp(z, self.prior_std)

  def discretize(self, x: Array, t: Array) -> tuple[Array, Array]:
    """(f, G) of x_{i+1} = x_i + f_i(x_i) + G_i z_i over the step of size T/N.

    Default: Euler–Maruyama, f = f(x, t) dt and G = g(t) sqrt(dt).
    """
    drift, diffusion = self.sde(x, t)
    dt = self.T / self.N
    return drift * dt, diffusion * math.sqrt(dt)

  def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> "ReverseSDE":
    """The reverse-time SDE ([SDE] Eq. 6) or probability-flow ODE ([SDE] Eq. 13)."""
    return ReverseSDE(self, score_fn, probability_flow)

  # --- helpers -----------------------------------------------------------------
  def timestep_index(self, t: Array) -> Array:
    """The discrete index i = floor(t (N-1) / T) of the chain at time t.

    A small tolerance keeps t = i T / (N - 1) computed in float32 on index i.
    """
    return jnp.clip(jnp.floor(t * (self.N - 1) / self.T + 1e-4).astype(jnp.int32),
                    0, self.N - 1)


@dataclasses.dataclass(frozen=True)
class VESDE(SDE):
  """Variance-exploding SDE ([SDE] Eq. 9, 30):

      dx = sigma(t) sqrt(2 log(sigma_max / sigma_min)) dw,
      sigma(t) = sigma_min (sigma_max / sigma_min)^t.

  As in the reference implementation, the marginal std is sigma(t) (not
  sqrt(sigma(t)^2 - sigma_min^2)): the data are taken to be perturbed by
  N(0, sigma_min^2) at t = 0, which the SMLD chain below does on its first step.
  """
  sigma_min: float = 0.01
  sigma_max: float = 50.0
  N: int = 1000
  T: float = 1.0

  def sigma(self, t: Array) -> Array:
    return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

  def drift_coeff(self, t):
    return jnp.zeros_like(t)

  def diffusion_coeff(self, t):
    return self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

  def marginal_coeffs(self, t):
    return jnp.ones_like(t), self.sigma(t)

  @property
  def prior_std(self) -> float:
    return self.sigma_max

  @property
  def discrete_sigmas(self) -> Array:
    """NCSN's geometric noise levels sigma_1 < ... < sigma_N (Song & Ermon 2019)."""
    return jnp.exp(jnp.linspace(math.log(self.sigma_min), math.log(self.sigma_max), self.N))

  def discretize(self, x, t):
    """SMLD chain ([SDE] Eq. 8): x_i = x_{i-1} + sqrt(sigma_i^2 - sigma_{i-1}^2) z."""
    _per_example(x, t)
    i = self.timestep_index(t)
    sigmas = self.discrete_sigmas
    sigma = sigmas[i]
    adjacent = jnp.where(i == 0, 0.0, sigmas[jnp.maximum(i - 1, 0)])
    return jnp.zeros_like(x), jnp.sqrt(sigma**2 - adjacent**2)


@dataclasses.dataclass(frozen=True)
class VPSDE(SDE):
  """Variance-preserving SDE ([SDE] Eq. 11, 32):

      dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw,  beta(t) = beta_min + t (beta_max - beta_min).
  """
  beta_min: float = 0.1
  beta_max: float = 20.0
  N: int = 1000
  T: float = 1.0

  def beta(self, t: Array) -> Array:
    return self.beta_min + t * (self.beta_max - self.beta_min)

  def log_mean_coeff(self, t: Array) -> Array:
    """log alpha(t) = -1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min ([SDE] Eq. 33)."""
    return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

  def drift_coeff(self, t):
    return -0.5 * self.beta(t)

  def diffusion_coeff(self, t):
    return jnp.sqrt(self.beta(t))

  def marginal_coeffs(self, t):
    lmc = self.log_mean_coeff(t)
    return jnp.exp(lmc), jnp.sqrt(-jnp.expm1(2.0 * lmc))

  @property
  def prior_std(self) -> float:
    return 1.0

  @property
  def discrete_betas(self) -> Array:
    """DDPM's beta_i = linspace(beta_min / N, beta_max / N, N) (Ho et al. 2020)."""
    return jnp.linspace(self.beta_min / self.N, self.beta_max / self.N, self.N)

  @property
  def alphas_cumprod(self) -> Array:
    return jnp.cumprod(1.0 - self.discrete_betas)

  def discretize(self, x, t):
    """DDPM chain ([SDE] Eq. 10): x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z."""
    _per_example(x, t)
    beta = self.discrete_betas[self.timestep_index(t)]
    f = _bcast(jnp.sqrt(1.0 - beta), x) * x - x
    return f, jnp.sqrt(beta)


@dataclasses.dataclass(frozen=True)
class subVPSDE(SDE):  # noqa: N801  (the paper's name)
  """Sub-VP SDE ([SDE] Eq. 12):

      dx = -1/2 beta(t) x dt + sqrt(beta(t) (1 - exp(-2 int_0^t beta(s) ds))) dw.

  Its marginal std is 1 - exp(int_0^t -beta(s) ds) ([SDE] Eq. 34), always below the
  VP SDE's.
  """
  beta_min: float = 0.1
  beta_max: float = 20.0
  N: int = 1000
  T: float = 1.0

  def beta(self, t: Array) -> Array:
    return self.beta_min + t * (self.beta_max - self.beta_min)

  def log_mean_coeff(self, t: Array) -> Array:
    return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

  def drift_coeff(self, t):
    return -0.5 * self.beta(t)

  def diffusion_coeff(self, t):
    discount = -jnp.expm1(-2 * self.beta_min * t - (self.beta_max - self.beta_min) * t**2)
    return jnp.sqrt(self.beta(t) * discount)

  def marginal_coeffs(self, t):
    lmc = self.log_mean_coeff(t)
    return jnp.exp(lmc), -jnp.expm1(2.0 * lmc)

  @property
  def prior_std(self) -> float:
    return 1.0


@dataclasses.dataclass(frozen=True)
class ReverseSDE:
  """Reverse-time SDE ([SDE] Eq. 6) or, with `probability_flow`, the ODE (Eq. 13):

      dx = [f(x, t) - c g(t)^2 score(x, t)] dt + g(t) dw_bar,  c = 1 (SDE) or 1/2 (ODE, g dw_bar dropped).

  Time runs from T to 0; `sde` and `discretize` return the coefficients to use
  with a negative time step (the reverse-diffusion predictor's convention).
  """
  forward: SDE
  score_fn: ScoreFn
  probability_flow: bool = False

  @property
  def T(self) -> float:
    return self.forward.T

  @property
  def N(self) -> int:
    return self.forward.N

  def _c(self) -> float:
    return 0.5 if self.probability_flow else 1.0

  def sde(self, x: Array, t: Array) -> tuple[Array, Array]:
    drift, diffusion = self.forward.sde(x, t)
    drift = drift - _bcast(diffusion**2, x) * self.score_fn(x, t) * self._c()
    diffusion = jnp.zeros_like(diffusion) if self.probability_flow else diffusion
    return drift, diffusion

  def discretize(self, x: Array, t: Array) -> tuple[Array, Array]:
    """Reverse of the forward chain ([SDE] Eq. 46): x_{i-1} = x_i - f_i + G_i^2 s + G_i z."""
    f, G = self.forward.discretize(x, t)
    rev_f = f - _bcast(G**2, x) * self.score_fn(x, t) * self._c()
    rev_G = jnp.zeros_like(G) if self.probability_flow else G
    return rev_f, rev_G


SDES: Mapping[str, type[SDE]] = {"vesde": VESDE, "vpsde": VPSDE, "subvpsde": subVPSDE}


def sde_from_config(config) -> SDE:
  """Builds the SDE named by `config.training.sde` with score_sde's field names.

  Reads `training.sde` in {'vesde', 'vpsde', 'subvpsde'}, `model.sigma_min`,
  `model.sigma_max` (VE), `model.beta_min`, `model.beta_max` (VP, sub-VP) and
  `model.num_scales` (N).
  """
  name = str(config.training.sde).lower()
  if name not in SDES:
    raise ValueError(f"config.training.sde={config.training.sde!r} is not one of {sorted(SDES)}")
  m = config.model
  if name == "vesde":
    return VESDE(sigma_min=float(m.sigma_min), sigma_max=float(m.sigma_max), N=int(m.num_scales))
  return SDES[name](beta_min=float(m.beta_min), beta_max=float(m.beta_max), N=int(m.num_scales))


def ncsn_sigmas(sigma_min: float, sigma_max: float, n: int) -> np.ndarray:
  """NCSN's decreasing geometric ladder sigma_1 > ... > sigma_L (Song & Ermon 2019, Sec. 4.2)."""
  return np.exp(np.linspace(np.log(sigma_max), np.log(sigma_min), n))
