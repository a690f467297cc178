"""Exact likelihood of the probability-flow ODE, and bits per dimension.

Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole, "Score-Based Generative
Modeling through Stochastic Differential Equations", ICLR 2021 ([SDE] below).

The probability-flow ODE ([SDE] Eq. 13)

    dx/dt = f~(x, t) = f(x, t) - 1/2 g(t)^2 s_theta(x, t)

is a continuous normalizing flow (Chen et al. 2018): integrating from t = eps to
t = T maps x to z = x(T) and, by the instantaneous change of variables,

    log p_eps(x) = log pi(z) + int_eps^T div f~(x(t), t) dt        ([SDE] Eq. 39)

where pi is the prior. The divergence is computed exactly (a full trace, D
Jacobian-vector products per evaluation; small D only) or estimated with the
Skilling-Hutchinson trick ([SDE] Eq. 40; Grathwohl et al. 2019, FFJORD):
div f~ = E_e[e^T (d f~/dx) e] for a probe e with E[e e^T] = I, drawn once per
solve and held fixed along the trajectory, which makes the integral an unbiased
estimate of the exact one (the x-trajectory does not depend on e).

The whole batch is integrated as one ODE state `(x, delta)` with one adaptive
`diffrax.diffeqsolve` call (no host round trips), so `log_likelihood` is jittable
end to end and vmappable over keys.

By default the ODE is integrated in TrigFlow's angle phi = arctan(sigma / (0.5 alpha))
with the state y = x / r(t) (`scorejax.sampling.ode_time`); the divergence is then
taken with respect to y and the state scaling adds its exact log-determinant
D log(r(T) / r(eps)), so the value is that of Eq. 39. On 48-D mixtures at the default
tolerances this takes 97-103 evaluations under every SDE (t: 97-163; fewer under VE
and sub-VP) with errors of the same order (mean 0.5-1.7e-4 nats per point, worst
<= 1.1e-3, bias <= 4e-5; 3x smaller than t's under VE, up to 3.5x larger in the mean
under the VP family), and Gaussian Hutchinson probes have far less variance, since
the log-determinant is not estimated (bench/bench_likelihood.py).
`time_variable="t"` is the earlier solver.

Note: the value is the log-density of the *model* defined by the ODE and the
prior, log p_eps(x) + log pi(z) - log p_T(z) when the score is exact; it equals
the data density only where pi ~ p_T (see docs/design.md).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import diffrax
import jax
import jax.numpy as jnp

from scorejax import checks
from scorejax import sde as sde_lib
from scorejax.sampling.ode_time import SIGMA_DATA, get_time_variable
from scorejax.sampling.solvers import evaluations_per_solve, get_solver

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]

# Where the likelihood's ODE starts, t = eps (score_sde's 1e-5): the model is the
# probability-flow ODE from p_eps, so eps is part of the model whose density is reported.
LIKELIHOOD_EPS = 1e-5
DriftFn = Callable[[Array], Array]
# (drift_fn, x, probe) -> (drift f~(x) shaped like x, per-example divergence (B,))
DivergenceFn = Callable[[DriftFn, Array, Array], tuple[Array, Array]]


def _sum_per_example(v: Array) -> Array:
  return jnp.sum(v.reshape(v.shape[0], -1), axis=-1)


# --- divergence of the ODE drift -------------------------------------------------------

def hutchinson_divergence(drift_fn: DriftFn, x: Array, probe: Array) -> tuple[Array, Array]:
  """Skilling-Hutchinson estimate e^T (d f~/dx) e per example ([SDE] Eq. 40).

  One forward-mode Jacobian-vector product of the batched drift gives both f~(x)
  and J e; the per-example sum of e * (J e) is the estimate. This assumes, as
  everywhere in the library, that the score acts on each example independently, so
  the batch Jacobian is block diagonal.
  """
  drift, jvp = jax.jvp(drift_fn, (x,), (probe,))
  return drift, _sum_per_example(probe * jvp)


def exact_divergence(drift_fn: DriftFn, x: Array, probe: Array | None = None
                     ) -> tuple[Array, Array]:
  """The exact trace of d f~/dx per example: D Jacobian-vector products.

  The i-th basis vector is applied to every example at once (block-diagonal batch
  Jacobian), so the cost is one drift evaluation and D applications of its
  linearization. Memory is D times a jvp;
  meant for small D (toy data, tests), not images.
  """
  del probe
  b = x.shape[0]
  d = math.prod(x.shape[1:])
  eye = jnp.eye(d, dtype=x.dtype)
  basis = jnp.broadcast_to(eye[:, None, :], (d, b, d)).reshape((d,) + x.shape)
  # One evaluation of the drift, then D applications of its linearization.
  drift, jvp_fn = jax.linearize(drift_fn, x)
  jvps = jax.vmap(jvp_fn)(basis)  # (D, B, *shape)
  diag = jnp.einsum("ibi->bi", jvps.reshape(d, b, d))
  return drift, jnp.sum(diag, axis=-1)


def _rademacher_probe(key: Array, shape: Sequence[int], dtype) -> Array:
  return jax.random.rademacher(key, tuple(shape), dtype=dtype)


def _gaussian_probe(key: Array, shape: Sequence[int], dtype) -> Array:
  return jax.random.normal(key, tuple(shape), dtype=dtype)


# name -> (divergence function, probe sampler or None)
DIVERGENCES: Mapping[str, tuple[DivergenceFn, Callable | None]] = {
    "hutchinson_rademacher": (hutchinson_divergence, _rademacher_probe),
    "hutchinson_gaussian": (hutchinson_divergence, _gaussian_probe),
    "exact": (exact_divergence, None),
}

def _max_per_example_rms(state: tuple[Array, Array]) -> Array:
  """Step-size-control norm: RMS over each example's (x, delta), max over the batch.

  The scaled local error of every example must be <= 1 for a step to be accepted,
  so the accuracy of an example does not depend on the batch size. (score_sde's
  RMS over the flattened batch dilutes one example's error by the batch size: at
  rtol = atol = 1e-5 on 256 32-D VE points the worst per-point error was 35x larger
  than with this norm, for ~20% fewer evaluations; bench/bench_likelihood.py.)
  """
  xs, delta = state
  b = delta.shape[0]
  sq = jnp.sum(jnp.square(xs.reshape(b, -1)), axis=-1) + jnp.square(delta)
  return jnp.sqrt(jnp.max(sq) / (xs.size // b + 1))


def _max_per_example_state_or_density(state: tuple[Array, Array]) -> Array:
  """Step-size-control norm: per example the larger of the RMS over its state and the
  error of its log-density per dimension, max over the batch.

  With the state in units of its own scale and delta integrated per dimension, rtol
  and atol bound both the state's error and the log-density's error per dimension
  (the quantity bits/dim reports), independently of D and of the batch.
  """
  ys, delta_per_dim = state
  b = delta_per_dim.shape[0]
  rms = jnp.sqrt(jnp.mean(jnp.square(ys.reshape(b, -1)), axis=-1))
  return jnp.max(jnp.maximum(rms, jnp.abs(delta_per_dim)))


# time variable -> (first step as a fraction of the range, PID controller options,
# delta integrated per dimension). "t" is the earlier solver, unchanged. Started
# from the data, the I controller rejected about one step in three; the PI
# coefficients (0.2, 0.4) (Soderlind 2002, listed in diffrax's docs) with safety 0.75
# reject fewer: on 48-D mixtures at rtol = atol = 1e-5, 97-103 evaluations against
# the I controller's 103-127, with ~1.5x smaller errors.
_LIKELIHOOD_CONTROL = {
    "t": (0.01, {}, False),
    "log_snr": (0.15, dict(pcoeff=0.2, icoeff=0.4, safety=0.75), True),
    "angle": (0.15, dict(pcoeff=0.2, icoeff=0.4, safety=0.75), True),
}


# --- log-likelihood --------------------------------------------------------------------

def log_likelihood(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, x: Array, *,
                   rtol: float = 1e-5, atol: float = 1e-5, eps: float = LIKELIHOOD_EPS,
                   divergence: str = "hutchinson_rademacher", solver: str = "tsit5",
                   max_steps: int = 4096, time_variable: str = "angle",
                   sigma_data: float = SIGMA_DATA) -> tuple[Array, Array, Array]:
  """Log-density of x (nats) under the probability-flow ODE model ([SDE] App. D.2).

  Solves d/du [y, delta] = [dy/du, div_y dy/du] from t = eps to t = T in the time
  variable u and state y = x / c(t) of `time_variable` (`scorejax.sampling.ode_time`;
  [SDE] Eqs. 13, 39 for u = t, y = x) with an adaptive explicit RK solver and a PID
  step-size controller, then returns log pi(z) + delta(T) + D log(c(T) / c(eps)), the
  last term the log-determinant of the state scaling. The solver integrates +-u,
  whichever grows from eps to T. The batch shares one adaptive step sequence whose
  error control holds for every example, so `nfe` is per batch and an example's
  value depends on its batch mates only within the tolerance.

  Examples whose input is not finite (any NaN or infinity) are replaced by zeros
  for the solve, so that they do not enter the shared step-size control, and get
  NaN for their `logp` and `z`; every other example's result is what it would be
  without them (within the tolerance).

  Args:
    key: PRNG key; draws the Hutchinson probe (once per solve, fixed along the
      trajectory, as in FFJORD and score_sde). Unused by `divergence="exact"`.
    sde: the forward SDE (defines f, g, T and the prior pi).
    score_fn: `score_fn(x, t) -> array shaped like x`, acting per example.
    x: data batch (B, *data_shape), already in the model's scale (e.g. [-1, 1]).
    rtol, atol: tolerances of the PID controller, scaled by atol + rtol |.| and
      checked per example: for "angle" and "log_snr" on the larger of the RMS over
      the example's state y and the error of its log-density per dimension
      (`_max_per_example_state_or_density`); for "t" on the RMS over its (x, delta)
      (`_max_per_example_rms`).
    eps: start time of the integration (the model's time floor).
    divergence: one of `DIVERGENCES`: "hutchinson_rademacher",
      "hutchinson_gaussian" (one jvp per evaluation) or "exact" (one drift
      evaluation and D linearized jvps: small D only).
    solver: one of `scorejax.sampling.solvers.SOLVERS` (default "tsit5").
    max_steps: step budget of the solver; a solve that exhausts it (or fails
      otherwise) returns NaN log-likelihoods instead of raising, so no host
      round trip is needed.
    time_variable: "angle" (default), "log_snr" or "t" (the earlier solver); see
      `scorejax.sampling.ode_time`.
    sigma_data: the data std assumed by "angle" (0.5: data in [-1, 1]).

  Returns:
    logp: (B,) log-density in nats (NaN where the solve failed or the example is
      not finite).
    z: (B, *data_shape) the latents x(T) (NaN for examples that are not finite).
    nfe: int32 scalar, the number of evaluations of the ODE's right-hand side
      (each one score evaluation for the drift plus the divergence: one jvp for
      Hutchinson, D for exact), derived from `sol.stats['num_steps']` (see
      `solvers.evaluations_per_solve`). Under `vmap` over keys it is per solve.

  Raises:
    ValueError, before any work: an unknown `divergence`, `solver` or
    `time_variable` (listing the valid ones), x without a batch axis, eps outside (0, sde.T), or a score_fn
    whose output is not shaped like x.
  """
  if divergence not in DIVERGENCES:
    raise ValueError(f"log_likelihood: divergence={divergence!r} is not one of "
                     f"{sorted(DIVERGENCES)}")
  if jnp.ndim(x) < 2:
    raise ValueError(f"log_likelihood: expected x of shape (B, *data_shape), got {jnp.shape(x)}")
  ode_solver = get_solver(solver)
  checks.check_time_floor(eps, sde.T, where="log_likelihood", default=LIKELIHOOD_EPS)
  div_fn, probe_fn = DIVERGENCES[divergence]
  tv = get_time_variable(time_variable, sde, sigma_data)
  b = x.shape[0]
  x = jnp.asarray(x)
  dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
  checks.check_score_shape(score_fn, x.shape, dtype, where="log_likelihood")
  x = x.astype(dtype)
  d = math.prod(x.shape[1:])
  # A non-finite example would make the shared error norm NaN and fail every
  # example's solve: it is solved as zeros and its results set to NaN below.
  finite = jnp.all(jnp.isfinite(x.reshape(b, -1)), axis=-1)
  x = jnp.where(sde_lib.batch_broadcast(finite, x), x, jnp.zeros_like(x))
  probe = None if probe_fn is None else probe_fn(key, x.shape, dtype)
  first_step, control, per_dim = _LIKELIHOOD_CONTROL[time_variable]
  # s = sign * u grows from eps to T.
  sign = 1.0 if tv.increasing else -1.0
  delta_scale = 1.0 / d if per_dim else 1.0

  def vector_field(s, state, args):
    del args
    yt, _ = state
    drift_fn = lambda y: sign * tv.velocity(score_fn, y, sign * s)
    drift, div = div_fn(drift_fn, yt, probe)
    return drift.astype(dtype), (div * delta_scale).astype(dtype)

  t_eps, t_T = jnp.asarray(eps, dtype), jnp.asarray(sde.T, dtype)
  s0, s1 = sign * tv.u_of_t(t_eps), sign * tv.u_of_t(t_T)
  if time_variable == "t":
    s0, s1 = eps, sde.T  # the earlier solver's exact end points
  log_c_eps, log_c_T = tv.log_scale(t_eps), tv.log_scale(t_T)
  # An explicit first step (the PID controller adapts it from the first step on):
  # diffrax 0.7's automatic selection is bypassed for wrapped terms anyway and uses
  # 0.01; being explicit keeps `nfe` exact across diffrax versions.
  dt0 = first_step * (s1 - s0)
  norm = _max_per_example_state_or_density if per_dim else _max_per_example_rms
  sol = diffrax.diffeqsolve(
      diffrax.ODETerm(vector_field), ode_solver, t0=s0, t1=s1, dt0=dt0,
      y0=(x * jnp.exp(-log_c_eps), jnp.zeros((b,), dtype)),
      stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, norm=norm, **control),
      saveat=diffrax.SaveAt(t1=True), max_steps=max_steps, throw=False)
  y, delta = sol.ys[0][-1], sol.ys[1][-1] / delta_scale
  z = y * jnp.exp(log_c_T)
  logp = sde.prior_logp(z) + delta + d * (log_c_T - log_c_eps)
  ok = sol.result == diffrax.RESULTS.successful
  logp = jnp.where(ok & finite, logp, jnp.nan)
  z = jnp.where(sde_lib.batch_broadcast(finite, z), z, jnp.nan)
  nfe = evaluations_per_solve(ode_solver, sol.stats["num_steps"]).astype(jnp.int32)
  return logp, z, nfe


# --- bits per dimension -----------------------------------------------------------------

def dequantization_offset(data_range: float = 1.0, num_levels: int = 256) -> float:
  """Bits/dim to add to -log2 p / D for uniformly dequantized discrete data.

  Data with `num_levels` levels spread over an interval of length `data_range` have
  bins of width data_range / num_levels; the discrete log-likelihood bound of a
  continuous density is log P(bin) >= log p(x) + log(bin width) per dimension
  (Theis et al. 2016), i.e. bits/dim = -log2 p(x) / D + log2(num_levels) -
  log2(data_range). 8 for 256-level data in [0, 1]; 7 in [-1, 1].
  """
  return math.log2(num_levels) - math.log2(data_range)


def bits_per_dim(logp: Array, data_shape: Sequence[int], *, offset: float = 8.0) -> Array:
  """bits/dim = -logp / (D ln 2) + offset, with D = prod(data_shape).

  Dequantization convention (score_sde's; Theis et al. 2016, Ho et al. 2020): the
  256-level data are uniformly dequantized, x = (k + u) / 256 with u ~ U[0, 1), so a
  continuous density p on [0, 1]^D bounds the discrete likelihood with
  -log2 p(x) / D + 8 bits per dimension (bin width 1/256). A model that sees
  centered data y = 2x - 1 in [-1, 1]^D has p_x(x) = 2^D p_y(y), so the same
  number is -log2 p_y(y) / D + 7: pass `offset=7` there. In general
  `offset = dequantization_offset(data_range)` = log2(256) - log2(data range).

  Args:
    logp: (B,) log-densities in nats of the data in the model's scale.
    data_shape: the shape of one example (no batch axis).
    offset: bits added per dimension (8.0 for data in [0, 1], 7.0 for [-1, 1]).

  Returns:
    (B,) bits per dimension.
  """
  d = math.prod(tuple(data_shape))
  return -logp / (d * math.log(2.0)) + offset


# The variational bound lives in its own module (scorejax/likelihood_bound.py); re-exported
# here as part of the likelihood API (API.md).
from scorejax.likelihood_bound import elbo_bits_per_dim, elbo_nats, elbo_terms  # noqa: E402,F401
