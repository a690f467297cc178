"""Forward SDEs of score-based generative modeling as noise schedules, and their reversals.

Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole, "Score-Based Generative
Modeling through Stochastic Differential Equations", ICLR 2021 (referred to as
[SDE] below).

Every SDE here is affine in x, dx = f(t) x dt + g(t) dw, with the Gaussian
perturbation kernel ([SDE] Eq. 29)

    x_t = alpha(t) x_0 + sigma(t) z,   z ~ N(0, I),

so each class is a *schedule*: a few scalar functions of time that everything
downstream reads instead of testing the SDE's class —

    alpha(t), sigma(t)                 the kernel's scale and std (`marginal_coeffs`)
    log_snr(t) = log(alpha / sigma)    the half log signal-to-noise ratio lambda(t)
    t_of_log_snr(lambda)               its inverse, in closed form
    drift_coeff(t) = f(t) = d log alpha / dt
    diffusion_coeff(t) = g(t),  g2(t) = g(t)^2 = d sigma^2 / dt - 2 f(t) sigma^2
    prior_std                          the prior pi = N(0, prior_std^2 I)

(Kingma et al. 2021, "Variational Diffusion Models", Eqs. 1-2 and App. A; Lu et
al. 2022, "DPM-Solver", Sec. 2). Score <-> noise <-> data prediction conversions
given (alpha, sigma) live in `scorejax.parameterization`.

Besides the schedule, a class declares how score_sde's networks are conditioned
and what they output for it (`model_output`, `model_labels`), and, where score_sde
has one, its discrete chain (`chain`: SMLD sigma_i for VE, DDPM beta_i for VP),
which stays exactly score_sde's. The number of steps `n` of a discretization is an
argument of the discrete methods; the field `N` is only its default (score_sde's
`model.num_scales`, which also fixes the labels of a discretely trained network).
Time floors (`eps`) belong to the losses, samplers and the config, not to the SDE.

Adding an SDE means one new class here (see `CosineVPSDE`) and one entry in `SDES`.

Shapes: `x` is a batch `(B, *data_shape)`, `t` is `(B,)`.
SDE objects are frozen dataclasses: hashable, so they can be closed over or passed
as static arguments to `jax.jit`.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import operator
from typing import Callable, ClassVar, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from scorejax.checks import static_float

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


class ScheduleError(ValueError):
  """An SDE constructor argument the schedule cannot run with; `argument` names it."""

  def __init__(self, message: str, argument: str = ""):
    super().__init__(message)
    self.argument = argument


def check_per_example(x: Array, t: Array) -> None:
  """Raises a clear error unless x is (B, ...) and t is (B,)."""
  if t.ndim != 1 or x.shape[0] != t.shape[0]:
    raise ValueError(
        f"expected x of shape (B, ...) and t of shape (B,), got x{tuple(x.shape)} "
        f"and t{tuple(t.shape)}")


def batch_broadcast(v: Array, x: Array) -> Array:
  """Reshapes a per-example scalar `(B,)` to broadcast against `x` `(B, ...)`."""
  v = jnp.asarray(v)
  return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def _gaussian_logp(z: Array, std: float) -> Array:
  """log N(z; 0, std^2 I) per example, summed over all but the batch axis."""
  d = math.prod(z.shape[1:])
  sq = jnp.sum(jnp.square(z).reshape(z.shape[0], -1), axis=-1)
  return -0.5 * d * math.log(2 * math.pi * std**2) - 0.5 * sq / std**2


def _time_of_log_mean_coeff(log_alpha: Array, beta_min: float, beta_max: float) -> Array:
  """Solves log alpha(t) = -1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min for t >= 0.

  The positive root of a quadratic, written without cancellation:
  t = 2 c / (b + sqrt(b^2 + 4 a c)) with a = (beta_max - beta_min) / 4, b = beta_min / 2,
  c = -log alpha >= 0.
  """
  a, b, c = 0.25 * (beta_max - beta_min), 0.5 * beta_min, -log_alpha
  return 2.0 * c / (b + jnp.sqrt(b * b + 4.0 * a * c))


@dataclasses.dataclass(frozen=True)
class SDE(abc.ABC):
  """dx = f(t) x dt + g(t) dw with the kernel N(alpha(t) x_0, sigma(t)^2 I).

  Subclasses are frozen dataclasses whose last fields are `N: int` (the default
  number of discretization steps) and `T: float` (the end time), and define the
  schedule methods marked abstract below. Constructing one checks its parameters
  (`__post_init__`, a subclass's `_check_schedule`): invalid ones raise
  `ScheduleError` naming the argument, before anything is computed with them.
  """

  # The SDE's name in messages and figures ("VE", "sub-VP", ...).
  display_name: ClassVar[str] = ""
  # What score_sde's networks output for this SDE, a name of
  # `scorejax.parameterization.OUTPUT_TO_SCORE` ("score" or "eps").
  model_output: ClassVar[str] = "eps"
  # score_sde's discrete chain of this SDE: "smld", "ddpm" or None (no discrete
  # losses or ancestral sampling).
  chain: ClassVar[str | None] = None

  # --- constructor checks ----------------------------------------------------------
  def __post_init__(self) -> None:
    """Refuses parameters the schedule cannot run with, naming the argument and the fix.

    Only static values are checked (Python numbers, concrete arrays); a traced one
    (constructed inside `jax.jit`) is skipped.
    """
    if not isinstance(self.N, jax.core.Tracer):
      try:
        n = operator.index(self.N)
      except TypeError:  # a float, a string, ...
        n = 0
      if n < 1:
        self._refuse("N", f"N={self.N!r} must be an integer >= 1 (the default number of "
                     "discretization steps, score_sde's model.num_scales)")
    self._check_positive("T", "the end time; the default is 1.0")
    self._check_schedule()

  def _check_schedule(self) -> None:
    """Checks of a subclass's own parameters (raises `ScheduleError`)."""

  def _refuse(self, argument: str, message: str) -> None:
    raise ScheduleError(f"{type(self).__name__}: {message}", argument)

  def _static(self, argument: str) -> float | None:
    """The field `argument` as a float (None where traced); non-numbers are refused."""
    value = getattr(self, argument)
    try:
      return static_float(value)
    except (TypeError, ValueError):
      self._refuse(argument, f"{argument}={value!r} must be a number")

  def _check_positive(self, argument: str, meaning: str) -> float | None:
    value = self._static(argument)
    if value is not None and not (math.isfinite(value) and value > 0):
      self._refuse(argument, f"{argument}={getattr(self, argument)!r} must be positive and "
                   f"finite ({meaning})")
    return value

  # --- the schedule (t is a scalar or any array; elementwise) --------------------
  @abc.abstractmethod
  def alpha(self, t: Array) -> Array:
    """Scale of x_0 in the kernel, alpha(t) = exp(int_0^t f)."""

  @abc.abstractmethod
  def sigma(self, t: Array) -> Array:
    """Std of the kernel, sigma(t)."""

  @abc.abstractmethod
  def drift_coeff(self, t: Array) -> Array:
    """f(t) = d log alpha / dt, so that the drift is f(t) x."""

  @abc.abstractmethod
  def diffusion_coeff(self, t: Array) -> Array:
    """g(t)."""

  @abc.abstractmethod
  def t_of_log_snr(self, log_snr: Array) -> Array:
    """The time t at which log_snr(t) = `log_snr` (closed form)."""

  @property
  @abc.abstractmethod
  def prior_std(self) -> float:
    """Std of the prior pi = N(0, prior_std^2 I) at t = T."""

  def g2(self, t: Array) -> Array:
    """g(t)^2 = d sigma^2/dt - 2 f(t) sigma(t)^2."""
    return jnp.square(self.diffusion_coeff(t))

  def marginal_coeffs(self, t: Array) -> tuple[Array, Array]:
    """(alpha(t), sigma(t)) with p_{0t}(x_t|x_0) = N(alpha x_0, sigma^2 I)."""
    return self.alpha(t), self.sigma(t)

  def log_snr(self, t: Array) -> Array:
    """lambda(t) = log(alpha(t) / sigma(t)), decreasing in t (DPM-Solver, Sec. 3.1)."""
    alpha, sigma = self.marginal_coeffs(t)
    return jnp.log(alpha) - jnp.log(sigma)

  # --- how score_sde's networks see this SDE ---------------------------------------
  def model_labels(self, t: Array, continuous: bool = True) -> Array:
    """The conditioning labels of score_sde's networks at time t: 999 t (VP family)."""
    del continuous
    return t * 999.0

  def model_output_std(self, t: Array, continuous: bool = True) -> Array:
    """The sigma dividing a noise-predicting network's output: sigma(t)."""
    del continuous
    return self.sigma(t)

  # --- public batched API --------------------------------------------------------
  def sde(self, x: Array, t: Array) -> tuple[Array, Array]:
    """Drift f(x, t) and diffusion g(t) of the forward SDE ([SDE] Eq. 5)."""
    check_per_example(x, t)
    return batch_broadcast(self.drift_coeff(t), x) * x, self.diffusion_coeff(t)

  def marginal_prob(self, x0: Array, t: Array) -> tuple[Array, Array]:
    """Mean and std of p_{0t}(x_t | x_0) ([SDE] Eqs. 29, 33; App. B)."""
    check_per_example(x0, t)
    alpha, std = self.marginal_coeffs(t)
    return batch_broadcast(alpha, x0) * x0, std

  def prior_sampling(self, key: Array, shape: tuple[int, ...]) -> Array:
    """Samples the prior pi = N(0, prior_std^2 I); `shape` includes the batch."""
    return self.prior_std * jax.random.normal(key, shape)

  def prior_logp(self, z: Array) -> Array:
    """log pi(z) per example, in nats."""
    return _gaussian_logp(z, self.prior_std)

  def discretize(self, x: Array, t: Array, n: int | None = None) -> tuple[Array, Array]:
    """(f, G) of x_{i+1} = x_i + f_i(x_i) + G_i z_i over the step of size T/n.

    Default: Euler–Maruyama, f = f(x, t) dt and G = g(t) sqrt(dt). `n` defaults to N.
    """
    drift, diffusion = self.sde(x, t)
    dt = self.T / (n or self.N)
    return drift * dt, diffusion * math.sqrt(dt)

  def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> "ReverseSDE":
    """The reverse-time SDE ([SDE] Eq. 6) or probability-flow ODE ([SDE] Eq. 13)."""
    return ReverseSDE(self, score_fn, probability_flow)

  # --- discrete steps of n over [0, T] -------------------------------------------------
  def timestep_index(self, t: Array, n: int | None = None) -> Array:
    """The discrete index i = floor(t (n-1) / T) of an n-step chain at time t (n = N).

    A small tolerance keeps t = i T / (n - 1) computed in float32 on index i.
    """
    n = n or self.N
    return jnp.clip(jnp.floor(t * (n - 1) / self.T + 1e-4).astype(jnp.int32), 0, n - 1)

  def discrete_alpha(self, t: Array, n: int | None = None) -> Array:
    """alpha_i of the Langevin step rule of [SDE] Alg. 4 and 5 for an n-step grid.

    The squared scale of one step of the chain, (alpha(t) / alpha(t - T/n))^2:
    1 for VE; VP and sub-VP use score_sde's 1 - beta_i of the DDPM table.
    """
    dt = self.T / (n or self.N)
    return jnp.square(self.alpha(t) / self.alpha(jnp.maximum(t - dt, 0.0)))

  def ancestral_coeffs(self, t: Array, n: int | None = None) -> tuple[Array, Array, Array]:
    """(a, b, c) of the ancestral step x_{i-1} = a x_i + b s(x_i) + c z ([SDE] Eq. 47).

    Defined by the discrete chains of score_sde (SMLD, DDPM) only.
    """
    raise ValueError(
        f"ancestral sampling is defined for SDEs with a discrete chain (VESDE: SMLD, VPSDE: "
        f"DDPM), not {type(self).__name__}; use predictor='reverse_diffusion' or "
        "'euler_maruyama'")


@dataclasses.dataclass(frozen=True)
class VESDE(SDE):
  """Variance-exploding SDE ([SDE] Eq. 9, 30):

      dx = sigma(t) sqrt(2 log(sigma_max / sigma_min)) dw,
      sigma(t) = sigma_min (sigma_max / sigma_min)^t.

  As in the reference implementation, the marginal std is sigma(t) (not
  sqrt(sigma(t)^2 - sigma_min^2)): the data are taken to be perturbed by
  N(0, sigma_min^2) at t = 0, which the SMLD chain below does on its first step.
  score_sde's networks output the score and are conditioned on sigma(t)
  (continuous) or on the index of the decreasing sigma table (discrete, NCSN).
  """
  sigma_min: float = 0.01
  sigma_max: float = 50.0
  N: int = 1000
  T: float = 1.0

  display_name: ClassVar[str] = "VE"
  model_output: ClassVar[str] = "score"
  chain: ClassVar[str | None] = "smld"

  def _check_schedule(self) -> None:
    """0 < sigma_min < sigma_max < inf: sigma(t) grows geometrically from sigma_min to sigma_max."""
    lo = self._check_positive("sigma_min", "the noise std at t = 0; score_sde uses 0.01")
    hi = self._check_positive("sigma_max", "the noise std at t = T; score_sde uses 50 for CIFAR-10")
    if lo is not None and hi is not None and not hi > lo:
      self._refuse("sigma_max", f"sigma_max={self.sigma_max!r} must exceed "
                   f"sigma_min={self.sigma_min!r} (the noise grows from sigma_min at t = 0 to "
                   "sigma_max at t = T); swap them or raise sigma_max")

  def alpha(self, t):
    return jnp.ones_like(t)

  def sigma(self, t: Array) -> Array:
    return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

  def log_snr(self, t):
    return -(math.log(self.sigma_min) + t * math.log(self.sigma_max / self.sigma_min))

  def t_of_log_snr(self, log_snr):
    return (-log_snr - math.log(self.sigma_min)) / math.log(self.sigma_max / self.sigma_min)

  def drift_coeff(self, t):
    return jnp.zeros_like(t)

  def diffusion_coeff(self, t):
    return self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

  def marginal_coeffs(self, t):
    return jnp.ones_like(t), self.sigma(t)

  @property
  def prior_std(self) -> float:
    return self.sigma_max

  def model_labels(self, t, continuous=True):
    if continuous:
      return self.sigma(t)
    return jnp.round((self.T - t) * (self.N - 1)).astype(jnp.int32)

  def smld_sigmas(self, n: int | None = None) -> Array:
    """NCSN's geometric noise levels sigma_1 < ... < sigma_n (Song & Ermon 2019), n = N."""
    return jnp.exp(jnp.linspace(math.log(self.sigma_min), math.log(self.sigma_max), n or self.N))

  @property
  def discrete_sigmas(self) -> Array:
    """`smld_sigmas()` for the default N."""
    return self.smld_sigmas()

  def _adjacent_sigmas(self, t: Array, n: int | None) -> tuple[Array, Array]:
    """(sigma_i, sigma_{i-1}) of the n-level table at time t (sigma_{-1} = 0)."""
    i = self.timestep_index(t, n)
    sigmas = self.smld_sigmas(n)
    return sigmas[i], jnp.where(i == 0, 0.0, sigmas[jnp.maximum(i - 1, 0)])

  def discretize(self, x, t, n=None):
    """SMLD chain ([SDE] Eq. 8): x_i = x_{i-1} + sqrt(sigma_i^2 - sigma_{i-1}^2) z."""
    check_per_example(x, t)
    sigma, adjacent = self._adjacent_sigmas(t, n)
    return jnp.zeros_like(x), jnp.sqrt(sigma**2 - adjacent**2)

  def ancestral_coeffs(self, t, n=None):
    """SMLD ancestral step ([SDE] Eq. 47):
    x_{i-1} = x_i + (sigma_i^2 - sigma_{i-1}^2) s + sqrt(sigma_{i-1}^2 (sigma_i^2 - sigma_{i-1}^2) / sigma_i^2) z.
    """
    sigma, adjacent = self._adjacent_sigmas(t, n)
    step = sigma**2 - adjacent**2
    return jnp.ones_like(sigma), step, jnp.sqrt(adjacent**2 * step / sigma**2)


class _LinearBetaSchedule:
  """beta(t) = beta_min + t (beta_max - beta_min) and its integral (VP and sub-VP)."""

  beta_min: float
  beta_max: float

  def _check_schedule(self) -> None:
    """0 <= beta_min <= beta_max, beta_max > 0, both finite: beta(t) >= 0 on [0, T]
    (a negative beta has no diffusion sqrt(beta) and makes sigma(t)^2 negative), and
    sigma(t) > 0 for t > 0."""
    lo, hi = self._static("beta_min"), self._static("beta_max")
    if lo is not None and not (math.isfinite(lo) and lo >= 0):
      self._refuse("beta_min", f"beta_min={self.beta_min!r} must be finite and >= 0 (beta(t) is "
                   "the diffusion rate at time t, beta(0) = beta_min); score_sde uses 0.1")
    if hi is not None and not (math.isfinite(hi) and hi > 0):
      self._refuse("beta_max", f"beta_max={self.beta_max!r} must be positive and finite (beta(T) "
                   "= beta_max); score_sde uses 20")
    if lo is not None and hi is not None and hi < lo:
      self._refuse("beta_max", f"beta_max={self.beta_max!r} must be >= beta_min={self.beta_min!r} "
                   "(the linear schedule beta(t) = beta_min + t (beta_max - beta_min) increases); "
                   "swap them")

  def beta(self, t: Array) -> Array:
    return self.beta_min + t * (self.beta_max - self.beta_min)

  def log_mean_coeff(self, t: Array) -> Array:
    """log alpha(t) = -1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min ([SDE] Eq. 33)."""
    return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

  def alpha(self, t):
    return jnp.exp(self.log_mean_coeff(t))

  def drift_coeff(self, t):
    return -0.5 * self.beta(t)

  def ddpm_betas(self, n: int | None = None) -> Array:
    """DDPM's beta_i = linspace(beta_min / n, beta_max / n, n) (Ho et al. 2020), n = N."""
    n = n or self.N
    return jnp.linspace(self.beta_min / n, self.beta_max / n, n)

  @property
  def discrete_betas(self) -> Array:
    """`ddpm_betas()` for the default N."""
    return self.ddpm_betas()

  def discrete_alpha(self, t, n=None):
    """score_sde's alpha_i = 1 - beta_i of the n-step DDPM table ([SDE] Alg. 4, 5)."""
    return 1.0 - self.ddpm_betas(n)[self.timestep_index(t, n)]

  @property
  def prior_std(self) -> float:
    return 1.0


@dataclasses.dataclass(frozen=True)
class VPSDE(_LinearBetaSchedule, SDE):
  """Variance-preserving SDE ([SDE] Eq. 11, 32):

      dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw,  beta(t) = beta_min + t (beta_max - beta_min).

  score_sde's networks predict the noise z and are conditioned on 999 t
  (continuous) or on the DDPM step index (discrete).
  """
  beta_min: float = 0.1
  beta_max: float = 20.0
  N: int = 1000
  T: float = 1.0

  display_name: ClassVar[str] = "VP"
  chain: ClassVar[str | None] = "ddpm"

  def sigma(self, t):
    return jnp.sqrt(-jnp.expm1(2.0 * self.log_mean_coeff(t)))

  def diffusion_coeff(self, t):
    return jnp.sqrt(self.beta(t))

  def g2(self, t):
    return self.beta(t)

  def marginal_coeffs(self, t):
    lmc = self.log_mean_coeff(t)
    return jnp.exp(lmc), jnp.sqrt(-jnp.expm1(2.0 * lmc))

  def log_snr(self, t):
    lmc = self.log_mean_coeff(t)
    return lmc - 0.5 * jnp.log(-jnp.expm1(2.0 * lmc))

  def t_of_log_snr(self, log_snr):
    # alpha^2 = sigmoid(2 lambda), i.e. log alpha = -1/2 softplus(-2 lambda).
    return _time_of_log_mean_coeff(-0.5 * jax.nn.softplus(-2.0 * log_snr),
                                   self.beta_min, self.beta_max)

  @property
  def alphas_cumprod(self) -> Array:
    return jnp.cumprod(1.0 - self.discrete_betas)

  def model_labels(self, t, continuous=True):
    if continuous:
      return t * 999.0
    return self.timestep_index(t)

  def model_output_std(self, t, continuous=True):
    if continuous:
      return self.sigma(t)
    return jnp.sqrt(1.0 - self.alphas_cumprod)[self.timestep_index(t)]

  def discretize(self, x, t, n=None):
    """DDPM chain ([SDE] Eq. 10): x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z."""
    check_per_example(x, t)
    beta = self.ddpm_betas(n)[self.timestep_index(t, n)]
    f = batch_broadcast(jnp.sqrt(1.0 - beta), x) * x - x
    return f, jnp.sqrt(beta)

  def ancestral_coeffs(self, t, n=None):
    """DDPM ancestral step ([SDE] Eq. 47; Ho et al. 2020 Alg. 2 with the score):
    x_{i-1} = (x_i + beta_i s) / sqrt(1 - beta_i) + sqrt(beta_i) z.
    """
    beta = self.ddpm_betas(n)[self.timestep_index(t, n)]
    a = 1.0 / jnp.sqrt(1.0 - beta)
    return a, beta * a, jnp.sqrt(beta)


@dataclasses.dataclass(frozen=True)
class subVPSDE(_LinearBetaSchedule, SDE):  # noqa: N801  (the paper's name)
  """Sub-VP SDE ([SDE] Eq. 12):

      dx = -1/2 beta(t) x dt + sqrt(beta(t) (1 - exp(-2 int_0^t beta(s) ds))) dw.

  Its marginal std is 1 - exp(int_0^t -beta(s) ds) ([SDE] Eq. 34), always below the
  VP SDE's. score_sde conditions its networks on 999 t, also when trained
  discretely, and has no discrete chain for it (Euler–Maruyama discretization).
  """
  beta_min: float = 0.1
  beta_max: float = 20.0
  N: int = 1000
  T: float = 1.0

  display_name: ClassVar[str] = "sub-VP"

  def sigma(self, t):
    return -jnp.expm1(2.0 * self.log_mean_coeff(t))

  def diffusion_coeff(self, t):
    discount = -jnp.expm1(-2 * self.beta_min * t - (self.beta_max - self.beta_min) * t**2)
    return jnp.sqrt(self.beta(t) * discount)

  def marginal_coeffs(self, t):
    lmc = self.log_mean_coeff(t)
    return jnp.exp(lmc), -jnp.expm1(2.0 * lmc)

  def log_snr(self, t):
    lmc = self.log_mean_coeff(t)
    return lmc - jnp.log(-jnp.expm1(2.0 * lmc))

  def t_of_log_snr(self, log_snr):
    # alpha / (1 - alpha^2) = e^lambda  =>  alpha = 2 / (u + sqrt(u^2 + 4)), u = e^-lambda,
    # i.e. log alpha = -asinh(u / 2), accurate for both signs of lambda.
    log_alpha = -jnp.arcsinh(0.5 * jnp.exp(-log_snr))
    return _time_of_log_mean_coeff(log_alpha, self.beta_min, self.beta_max)


@dataclasses.dataclass(frozen=True)
class CosineVPSDE(SDE):
  """The cosine-schedule VP SDE (Nichol & Dhariwal 2021, Eq. 17; in continuous time as
  in Kingma et al. 2021 and DPM-Solver, App. D):

      alpha(t) = cos(pi/2 (t + s) / (1 + s)) / cos(pi/2 s / (1 + s)),  sigma = sqrt(1 - alpha^2),
      f(t) = d log alpha / dt = -pi / (2 (1 + s)) tan(pi/2 (t + s) / (1 + s)),  g(t)^2 = -2 f(t).

  Its log-SNR falls almost linearly over the middle of [0, T] instead of being
  concentrated near t = 1 as the linear-beta VP's is, which spends the steps of a
  uniform time grid more evenly. beta(t) = g^2 diverges at t = 1 + ... where alpha
  vanishes, so the process stops at T = 0.9946 (DPM-Solver's choice): lambda(T) ≈
  -4.8 as for the linear VP SDE (-5.0), and N(0, I) is the prior. Networks are
  conditioned and parameterized as for the VP SDE (999 t, noise prediction).
  """
  s: float = 0.008
  N: int = 1000
  T: float = 0.9946

  display_name: ClassVar[str] = "cosine VP"

  def _check_schedule(self) -> None:
    """s >= 0 and T < 1: alpha decreases from 1 (s < 0 gives alpha > 1, sigma^2 < 0) and
    stays positive on [0, T] (the phase pi/2 (T + s) / (1 + s) < pi/2 iff T < 1)."""
    s = self._static("s")
    if s is not None and not (math.isfinite(s) and s >= 0):
      self._refuse("s", f"s={self.s!r} must be finite and >= 0 (the cosine schedule's offset; "
                   "Nichol & Dhariwal 2021 use 0.008)")
    t_end = self._static("T")
    if t_end is not None and not t_end < 1.0:
      self._refuse("T", f"T={self.T!r} must be below 1 (alpha(t) vanishes at t = 1, where the "
                   "drift diverges); the default is 0.9946")

  def _phase(self, t: Array) -> Array:
    return 0.5 * math.pi * (t + self.s) / (1.0 + self.s)

  def log_mean_coeff(self, t: Array) -> Array:
    return jnp.log(jnp.cos(self._phase(t))) - math.log(math.cos(0.5 * math.pi * self.s / (1.0 + self.s)))

  def alpha(self, t):
    return jnp.exp(self.log_mean_coeff(t))

  def sigma(self, t):
    return jnp.sqrt(-jnp.expm1(2.0 * self.log_mean_coeff(t)))

  def log_snr(self, t):
    lmc = self.log_mean_coeff(t)
    return lmc - 0.5 * jnp.log(-jnp.expm1(2.0 * lmc))

  def t_of_log_snr(self, log_snr):
    log_alpha = -0.5 * jax.nn.softplus(-2.0 * log_snr)
    phase = jnp.arccos(jnp.exp(log_alpha) * math.cos(0.5 * math.pi * self.s / (1.0 + self.s)))
    return phase * 2.0 * (1.0 + self.s) / math.pi - self.s

  def drift_coeff(self, t):
    return -0.5 * math.pi / (1.0 + self.s) * jnp.tan(self._phase(t))

  def g2(self, t):
    return -2.0 * self.drift_coeff(t)

  def diffusion_coeff(self, t):
    return jnp.sqrt(self.g2(t))

  @property
  def prior_std(self) -> float:
    return 1.0

  def cosine_betas(self, t: Array, n: int | None = None) -> Array:
    """beta_i = 1 - alpha(t)^2 / alpha(t - T/n)^2 of the step ending at t, clipped at 0.999
    (Nichol & Dhariwal 2021, Sec. 3.2: their discrete betas on an n-step grid)."""
    dt = self.T / (n or self.N)
    log_ratio = self.log_mean_coeff(t) - self.log_mean_coeff(jnp.maximum(t - dt, 0.0))
    return jnp.minimum(-jnp.expm1(2.0 * log_ratio), 0.999)

  def discretize(self, x, t, n=None):
    """The exact Gaussian step of the kernel over [t - T/n, t], in DDPM form:
    x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z (Nichol & Dhariwal 2021, Eq. 17).

    Euler–Maruyama would be unstable here: beta(t) T/n reaches 0.37 near T for n = 1000.
    """
    check_per_example(x, t)
    beta = self.cosine_betas(t, n)
    # sqrt(1 - beta) - 1 without cancellation.
    return batch_broadcast(-beta / (1.0 + jnp.sqrt(1.0 - beta)), x) * x, jnp.sqrt(beta)


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
    drift = drift - batch_broadcast(diffusion**2, x) * self.score_fn(x, t) * self._c()
    diffusion = jnp.zeros_like(diffusion) if self.probability_flow else diffusion
    return drift, diffusion

  def discretize(self, x: Array, t: Array, n: int | None = None) -> tuple[Array, Array]:
    """Reverse of the forward chain ([SDE] Eq. 46): x_{i-1} = x_i - f_i + G_i^2 s + G_i z."""
    f, G = self.forward.discretize(x, t, n)
    rev_f = f - batch_broadcast(G**2, x) * self.score_fn(x, t) * self._c()
    rev_G = jnp.zeros_like(G) if self.probability_flow else G
    return rev_f, rev_G


def _ve_from_config(m) -> VESDE:
  return VESDE(sigma_min=float(m.sigma_min), sigma_max=float(m.sigma_max), N=int(m.num_scales))


def _linear_beta_from_config(cls):
  return lambda m: cls(beta_min=float(m.beta_min), beta_max=float(m.beta_max), N=int(m.num_scales))


SDES: Mapping[str, type[SDE]] = {
    "vesde": VESDE, "vpsde": VPSDE, "subvpsde": subVPSDE, "cosinevpsde": CosineVPSDE,
}
# config.model fields -> SDE, one builder per name of `SDES` (score_sde's field names).
_FROM_MODEL_CONFIG: Mapping[str, Callable[..., SDE]] = {
    "vesde": _ve_from_config,
    "vpsde": _linear_beta_from_config(VPSDE),
    "subvpsde": _linear_beta_from_config(subVPSDE),
    "cosinevpsde": lambda m: CosineVPSDE(N=int(m.num_scales)),
}


# SDE constructor argument -> the config.model field it is read from.
_CONFIG_FIELDS: Mapping[str, str] = {
    "sigma_min": "sigma_min", "sigma_max": "sigma_max", "beta_min": "beta_min",
    "beta_max": "beta_max", "N": "num_scales",
}


def sde_from_config(config) -> SDE:
  """Builds the SDE named by `config.training.sde` with score_sde's field names.

  Reads `training.sde` (a name of `SDES`), `model.sigma_min`, `model.sigma_max` (VE),
  `model.beta_min`, `model.beta_max` (VP, sub-VP) and `model.num_scales` (N). An
  invalid parameter raises `ScheduleError` naming its config field.
  """
  name = str(config.training.sde).lower()
  if name not in SDES:
    raise ValueError(f"config.training.sde={config.training.sde!r} is not one of {sorted(SDES)}")
  try:
    return _FROM_MODEL_CONFIG[name](config.model)
  except ScheduleError as e:
    field = _CONFIG_FIELDS.get(e.argument)
    if field is None:
      raise
    raise ScheduleError(f"config.model.{field}={config.model[field]!r} is invalid for "
                        f"config.training.sde={name!r}: {e}; set --config.model.{field}",
                        e.argument) from None


def ncsn_sigmas(sigma_min: float, sigma_max: float, n: int) -> np.ndarray:
  """NCSN's decreasing geometric ladder sigma_1 > ... > sigma_L (Song & Ermon 2019, Sec. 4.2)."""
  return np.exp(np.linspace(np.log(sigma_max), np.log(sigma_min), n))
