"""Time variables of the probability-flow ODE, shared by the ODE sampler and the likelihood.

The probability-flow ODE ([SDE] Eq. 13), dx/dt = f(t) x - 1/2 g(t)^2 s(x, t), can be
integrated in any monotone time variable u(t) and for any time-dependent rescaling
x = c(t) y of the state. How many steps an adaptive solver takes depends on how
smooth y(u) is. In the schedule view of `scorejax.sde` (alpha, sigma, the log-SNR
lambda = log(alpha / sigma)), with eps_hat = -sigma s and x0_hat = (x + sigma^2 s) / alpha:

  "t"        u = t,       y = x:
             dy/du = f(t) x - 1/2 g(t)^2 s                          ([SDE] Eq. 13)
  "log_snr"  u = lambda,  y = x / alpha:
             dy/du = -(sigma / alpha) eps_hat = sigma^2 s / alpha
             (the exponential-integrator form: Lu et al. 2022, "DPM-Solver", Sec. 3.1)
  "angle"    u = phi = arctan(sigma / (sigma_data alpha)),  y = x / r,
             r = sqrt(sigma_data^2 alpha^2 + sigma^2):
             dy/du = cos(phi) eps_hat - sin(phi) x0_hat / sigma_data = -(sigma / (sigma_data alpha r)) (x + r^2 s)
             (TrigFlow: Lu & Song 2024, "Simplifying, Stabilizing and Scaling
             Continuous-Time Consistency Models", Sec. 3; with sigma_data = 1 the
             angle of the v-parameterization, Salimans & Ho 2022, App. D)

Why the angle: for data N(mu, sigma_data^2 I) the angle form's solution is
y(phi) = cos(phi) mu / sigma_data + const, smooth over [0, pi/2], and both ends are compressed
(phi ~ sigma / (sigma_data alpha) near the data, and the data term fades like cos phi
near the noise). In lambda (and in t for VE, where t is affine in lambda) the state
has terms like e^{-lambda} near the data and e^{lambda} near the noise, which an RK
solver resolves with steps of ~0.5 in lambda over the whole range. On 48-D mixtures
with the exact score the angle form needs about half the evaluations of t or lambda
for the same error (bench/bench_samplers.py, bench/bench_likelihood.py). sigma_data
= 0.5 is the data std EDM uses for images in [-1, 1] (Karras et al. 2022, Sec. 5);
values in [0.35, 0.7] behaved alike there. Since (phi, y) removes the schedule, the
angle ODE of every SDE is the same one; only its end points differ. The state
y = x / r is x in units of its own scale (EDM's c_in x, Karras et al. 2022, Table 1),
O(1) at every noise level, so one atol means the same along the whole path (in t, a
VE state shrinks from sigma_max to the data's scale).

Log-density: with x = c(t) y the density of y is q_u(y) = p_t(c y) c^D, and the
instantaneous change of variables (Chen et al. 2018) for dy/du gives

    log p_eps(x) = log p_T(z) + int_{u(eps)}^{u(T)} div_y (dy/du) du + D log(c(T) / c(eps)),

the same value as [SDE] Eq. 39: the trace taken with respect to y differs from the one
with respect to x by D d log c / du, whose integral is the last term.

`u_of_t`, `t_of_u` and `log_scale` take scalars or arrays (elementwise); `velocity`
takes a batch y (B, *shape) and a scalar u.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, ClassVar, Mapping

import jax
import jax.numpy as jnp

from scorejax import sde as sde_lib

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]

SIGMA_DATA = 0.5


@dataclasses.dataclass(frozen=True)
class _TimeVariable:
  sde: sde_lib.SDE
  sigma_data: float = SIGMA_DATA
  # Whether u grows with t (the solvers integrate a forward variable +-u).
  increasing: ClassVar[bool] = True

  def _batch_t(self, y: Array, u: Array) -> Array:
    return jnp.full((y.shape[0],), self.t_of_u(u), y.dtype)


@dataclasses.dataclass(frozen=True)
class _Time(_TimeVariable):
  """u = t, y = x ([SDE] Eq. 13)."""

  def u_of_t(self, t):
    return jnp.asarray(t)

  def t_of_u(self, u):
    return u

  def log_scale(self, t):
    return jnp.zeros_like(jnp.asarray(t))

  def velocity(self, score_fn: ScoreFn, y: Array, u: Array) -> Array:
    return self.sde.reverse(score_fn, probability_flow=True).sde(y, self._batch_t(y, u))[0]


@dataclasses.dataclass(frozen=True)
class _LogSNR(_TimeVariable):
  """u = lambda, y = x / alpha: dy/du = sigma^2 s / alpha (DPM-Solver, Sec. 3.1)."""
  increasing: ClassVar[bool] = False

  def u_of_t(self, t):
    return self.sde.log_snr(t)

  def t_of_u(self, u):
    return self.sde.t_of_log_snr(u)

  def log_scale(self, t):
    return jnp.log(self.sde.alpha(t))

  def velocity(self, score_fn: ScoreFn, y: Array, u: Array) -> Array:
    t = self._batch_t(y, u)
    alpha, sigma = self.sde.marginal_coeffs(t)
    x = sde_lib.batch_broadcast(alpha, y) * y
    return sde_lib.batch_broadcast(sigma**2 / alpha, y) * score_fn(x, t)


@dataclasses.dataclass(frozen=True)
class _Angle(_TimeVariable):
  """u = arctan(sigma / (sigma_data alpha)), y = x / r (TrigFlow)."""

  def _r(self, alpha, sigma):
    return jnp.sqrt(jnp.square(self.sigma_data * alpha) + jnp.square(sigma))

  def u_of_t(self, t):
    alpha, sigma = self.sde.marginal_coeffs(t)
    return jnp.arctan2(sigma, self.sigma_data * alpha)

  def t_of_u(self, u):
    # sigma / alpha = exp(-lambda) = sigma_data tan(u).
    return self.sde.t_of_log_snr(-math.log(self.sigma_data) - jnp.log(jnp.tan(u)))

  def log_scale(self, t):
    alpha, sigma = self.sde.marginal_coeffs(t)
    return jnp.log(self._r(alpha, sigma))

  def velocity(self, score_fn: ScoreFn, y: Array, u: Array) -> Array:
    t = self._batch_t(y, u)
    alpha, sigma = self.sde.marginal_coeffs(t)
    r = self._r(alpha, sigma)
    x = sde_lib.batch_broadcast(r, y) * y
    # For Gaussian data N(mu, sigma_data^2 I), s = -(x - alpha mu) / r^2 and x + r^2 s =
    # alpha mu: what is left of the cancellation is the part of the data that is not
    # Gaussian at scale sigma_data.
    rate = sde_lib.batch_broadcast(sigma / (self.sigma_data * alpha * r), y)
    return -rate * (x + sde_lib.batch_broadcast(r**2, y) * score_fn(x, t))


TIME_VARIABLES: Mapping[str, type[_TimeVariable]] = {
    "angle": _Angle, "log_snr": _LogSNR, "t": _Time,
}


def get_time_variable(name: str, sde: sde_lib.SDE, sigma_data: float = SIGMA_DATA) -> _TimeVariable:
  """The time variable `name` (a key of `TIME_VARIABLES`) of `sde`'s probability-flow ODE."""
  if name not in TIME_VARIABLES:
    raise ValueError(f"unknown time_variable {name!r}; choose one of {sorted(TIME_VARIABLES)}")
  if not sigma_data > 0:
    raise ValueError(f"sigma_data must be positive, got {sigma_data}")
  return TIME_VARIABLES[name](sde, float(sigma_data))
