"""Time grids of the samplers, and their default time floor.

The samplers integrate the reverse process from t = T down to a floor eps > 0
rather than to 0: the score of the data distribution itself is not defined at
t = 0 for data on a lower-dimensional set, and the VE and VP kernels make the
learned score ill-conditioned there ([SDE] App. C; score_sde samples to 1e-3 and
trains from 1e-5). eps is an argument of every sampler (the config's
`sampling.eps`); `SAMPLING_EPS` is its default.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

SAMPLING_EPS = 1e-3


def uniform_steps(sde, n_steps: int | None) -> int:
  """The number of steps of a uniform-grid (PC) sampler: `n_steps`, or the SDE's N for None."""
  return sde.N if n_steps is None else int(n_steps)


def uniform_time_grid(T: float, eps: float, n: int) -> Array:
  """n times linspace(T, eps, n), decreasing: the predictor–corrector grid ([SDE] App. G)."""
  return jnp.linspace(T, eps, n)


# --- few-step time grids ------------------------------------------------------------
# Each maps (sde, n, eps) to n + 1 decreasing times from sde.T to eps. The grids that
# are defined in another variable (lambda, or EDM's sigma~ = sigma / alpha = exp(-lambda))
# are mapped back to t by the SDE's closed-form inverse `t_of_log_snr`, so one rule
# gives the same spacing in noise level under VE, VP, sub-VP and the cosine schedule.

KARRAS_RHO = 7.0


def _uniform(sde, n: int, eps: float) -> Array:
  """Uniform in t (score_sde's PC grid)."""
  return jnp.linspace(sde.T, eps, n + 1)


def _log_snr(sde, n: int, eps: float) -> Array:
  """Uniform in lambda = log(alpha / sigma) (DPM-Solver, Lu et al. 2022a, Sec. 3.3 'logSNR')."""
  lam = jnp.linspace(sde.log_snr(jnp.asarray(sde.T)), sde.log_snr(jnp.asarray(eps)), n + 1)
  return _pin_ends(sde.t_of_log_snr(lam), sde.T, eps)


def _karras(sde, n: int, eps: float, rho: float = KARRAS_RHO) -> Array:
  """Uniform in sigma~^(1/rho), sigma~ = sigma / alpha (Karras et al. 2022, Eq. 5, rho = 7)."""
  s_max = jnp.exp(-sde.log_snr(jnp.asarray(sde.T)))
  s_min = jnp.exp(-sde.log_snr(jnp.asarray(eps)))
  ramp = jnp.linspace(0.0, 1.0, n + 1)
  sig = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
  return _pin_ends(sde.t_of_log_snr(-jnp.log(sig)), sde.T, eps)


def _quadratic(sde, n: int, eps: float) -> Array:
  """Quadratic in t, dense near the data (DDIM, Song, Meng & Ermon 2021, App. D.2)."""
  ramp = jnp.linspace(1.0, 0.0, n + 1)
  return _pin_ends(eps + (sde.T - eps) * ramp**2, sde.T, eps)


def _pin_ends(ts: Array, T: float, eps: float) -> Array:
  """The grid with its end points exactly T and eps (the inverse map and eps + (T - eps) round)."""
  return ts.at[0].set(T).at[-1].set(eps)


TIME_SCHEDULES = {"uniform": _uniform, "log_snr": _log_snr, "karras": _karras,
                  "quadratic": _quadratic}


def time_steps(sde, n_steps: int, schedule: str = "log_snr", eps: float = SAMPLING_EPS) -> Array:
  """(n_steps + 1,) decreasing times from sde.T to eps by `schedule` (a `TIME_SCHEDULES` name)."""
  if schedule not in TIME_SCHEDULES:
    raise ValueError(f"schedule={schedule!r} is not one of {sorted(TIME_SCHEDULES)}")
  if int(n_steps) < 1:
    raise ValueError(f"n_steps={n_steps} must be at least 1")
  if not 0.0 < float(eps) < float(sde.T):
    raise ValueError(f"eps={eps} must lie in (0, T={sde.T})")
  return TIME_SCHEDULES[schedule](sde, int(n_steps), float(eps))
