"""The probability-flow ODE as an invertible encoder: data <-> latents, and interpolation.

The probability-flow ODE ([SDE] Song et al. 2021, Eq. 13)

    dx/dt = f(x, t) - 1/2 g(t)^2 grad log p_t(x)

maps p_eps to p_T deterministically and invertibly ([SDE] Sec. 4.3, "uniquely
identifiable encoding"). `encode` integrates it forward from t = eps to T, `decode`
backward from T to eps (the ODE sampler's `scorejax.sampling.solve_reverse_ode`), both
with the same diffrax solvers and adaptive step control (`scorejax.sampling.solvers`)
and in the same time variable and state scaling (`scorejax.sampling.ode_time`; by
default TrigFlow's angle with y = x / r(t), Lu & Song 2024, Sec. 3), so rtol and atol
mean the same in both directions.
With the exact score the latents of data samples are distributed as p_T, which equals
the prior up to the SDE's (negligible) mismatch. `interpolate` decodes the spherical
interpolation of two latents ([SDE] Sec. 4.3; Song, Meng & Ermon 2021, "DDIM", Sec. 5.4).

Each example is solved as its own ODE (the solves vmapped, each with its own adaptive
steps). Solving the batch as one state, as the ODE sampler does, controls the error
in the batch's RMS norm, which lets single examples near the boundary between modes
(where the decoder expands errors of the latent) return with errors 100x the
tolerance. `nfe` is the number of score evaluations per example of the batch's
longest solve: the vmapped solves step in lockstep, so this is what every example
costs (for a batch of one, exactly that example's count).
"""

from __future__ import annotations

from typing import Callable

import chex
import diffrax
import jax
import jax.numpy as jnp

from scorejax import sde as sde_lib
from scorejax.sampling.ode import solve_reverse_ode
from scorejax.sampling.ode_time import SIGMA_DATA, get_time_variable
from scorejax.sampling.schedules import SAMPLING_EPS
from scorejax.sampling.solvers import evaluations_per_solve, get_solver

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


def _check_eps(sde: sde_lib.SDE, eps: float) -> None:
  if not 0.0 < float(eps) < float(sde.T):
    raise ValueError(f"eps={eps} must lie in (0, T={sde.T})")


def solve_forward_ode(sde: sde_lib.SDE, score_fn: ScoreFn, x: Array, *, eps: float,
                      rtol: float, atol: float, solver: str = "tsit5",
                      max_steps: int = 16384, time_variable: str = "angle",
                      sigma_data: float = SIGMA_DATA) -> tuple[Array, Array]:
  """Integrates the probability-flow ODE from eps up to T; returns (x_T, nfe).

  The reverse of `solve_reverse_ode`: solved for y = x / c(t) in a forward variable
  s = +-(u - u(eps)) of the time variable u (`scorejax.sampling.ode_time`: "angle"
  (default), "log_snr" or "t" ([SDE] Eq. 13 as written)), so rtol and atol apply to y
  as they do in the sampler. A failed solve (e.g. `max_steps` reached) gives NaN
  latents rather than an exception, as the likelihood's solve does.
  """
  tv = get_time_variable(time_variable, sde, sigma_data)
  ode_solver = get_solver(solver)
  sign = 1.0 if tv.increasing else -1.0
  t_eps, t_T = jnp.asarray(eps, x.dtype), jnp.asarray(sde.T, x.dtype)
  u_eps, u_T = tv.u_of_t(t_eps), tv.u_of_t(t_T)

  def vector_field(s, y, args):
    del args
    # velocity is dy/du; s = sign * (u - u_eps) grows towards T.
    return (sign * tv.velocity(score_fn, y, u_eps + sign * s)).astype(y.dtype)

  sol = diffrax.diffeqsolve(
      diffrax.ODETerm(vector_field), ode_solver, t0=0.0, t1=sign * (u_T - u_eps), dt0=None,
      y0=x * jnp.exp(-tv.log_scale(t_eps)),
      stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
      saveat=diffrax.SaveAt(t1=True), max_steps=max_steps, throw=False)
  ok = sol.result == diffrax.RESULTS.successful
  z = sol.ys[-1] * jnp.exp(tv.log_scale(t_T))
  return jnp.where(ok, z, jnp.nan), evaluations_per_solve(ode_solver, sol.stats["num_steps"])


def _per_example(solve: Callable[[Array], tuple[Array, Array]], x: Array) -> tuple[Array, Array]:
  """`solve` (a batch -> (batch, nfe)) applied to every example on its own, vmapped."""
  if x.ndim < 2:
    raise ValueError(f"expected a batch (B, *data_shape), got shape {x.shape}")
  out, nfe = jax.vmap(lambda xi: solve(xi[None]))(x)
  return out[:, 0], jnp.max(nfe)


def encode(sde: sde_lib.SDE, score_fn: ScoreFn, x: Array, *, rtol: float = 1e-5,
           atol: float = 1e-5, eps: float = SAMPLING_EPS, solver: str = "tsit5",
           max_steps: int = 16384, time_variable: str = "angle",
           sigma_data: float = SIGMA_DATA) -> tuple[Array, Array]:
  """Data x (B, ...) at t = eps -> latents z at t = T along the probability-flow ODE.

  `time_variable` and `sigma_data` as in `scorejax.sampling.ode_sample`.
  Returns (z, nfe), z shaped like x.
  """
  _check_eps(sde, eps)
  get_time_variable(time_variable, sde, sigma_data)
  return _per_example(
      lambda xi: solve_forward_ode(sde, score_fn, xi, eps=eps, rtol=rtol, atol=atol,
                                   solver=solver, max_steps=max_steps,
                                   time_variable=time_variable, sigma_data=sigma_data), x)


def decode(sde: sde_lib.SDE, score_fn: ScoreFn, z: Array, *, rtol: float = 1e-5,
           atol: float = 1e-5, eps: float = SAMPLING_EPS, solver: str = "tsit5",
           max_steps: int = 16384, time_variable: str = "angle",
           sigma_data: float = SIGMA_DATA) -> tuple[Array, Array]:
  """Latents z (B, ...) at t = T -> data at t = eps: the ODE sampler's path
  (`solve_reverse_ode`) from given latents.

  Returns (x, nfe). `decode(encode(x))` returns x up to the solver's tolerance.
  """
  _check_eps(sde, eps)
  return _per_example(
      lambda zi: solve_reverse_ode(sde, score_fn, zi, eps=eps, rtol=rtol, atol=atol,
                                   solver=solver, max_steps=max_steps,
                                   time_variable=time_variable, sigma_data=sigma_data), z)


def slerp(z_a: Array, z_b: Array, weights: Array) -> Array:
  """Spherical interpolation (Shoemake 1985) of two latents z_a, z_b (same shape, any) at
  `weights` (n,) in [0, 1]: (n, *z_a.shape).

      slerp(w) = sin((1 - w) theta) / sin(theta) z_a + sin(w theta) / sin(theta) z_b,
      cos(theta) = <z_a, z_b> / (|z_a| |z_b|),

  which keeps the norm of Gaussian latents of equal norm (a straight line would pass
  through low-norm, low-density latents). Nearly parallel latents fall back to the line.
  """
  chex.assert_equal_shape([z_a, z_b])
  a, b = z_a.reshape(-1), z_b.reshape(-1)
  cos = jnp.dot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b))
  theta = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
  w = jnp.asarray(weights, z_a.dtype)[:, None]
  small = theta < 1e-4
  sin_theta = jnp.where(small, 1.0, jnp.sin(theta))
  coef_a = jnp.where(small, 1.0 - w, jnp.sin((1.0 - w) * theta) / sin_theta)
  coef_b = jnp.where(small, w, jnp.sin(w * theta) / sin_theta)
  return (coef_a * a[None] + coef_b * b[None]).reshape((-1,) + z_a.shape)


def interpolate(sde: sde_lib.SDE, score_fn: ScoreFn, x_a: Array, x_b: Array, n: int,
                **ode_options) -> Array:
  """n points from x_a to x_b (each (1, ...)): decode(slerp(encode(x_a), encode(x_b))).

  The ends are decode(encode(x)), i.e. x_a and x_b up to the solver's tolerance.
  `ode_options`: encode/decode's keywords (rtol, atol, eps, solver, max_steps,
  time_variable, sigma_data).
  Returns (n, *x_a.shape[1:]).
  """
  chex.assert_equal_shape([x_a, x_b])
  if x_a.shape[0] != 1:
    raise ValueError(f"interpolate takes one example per end, (1, ...); got {x_a.shape}")
  z, _ = encode(sde, score_fn, jnp.concatenate([x_a, x_b]), **ode_options)
  zs = slerp(z[0], z[1], jnp.linspace(0.0, 1.0, int(n)))
  xs, _ = decode(sde, score_fn, zs, **ode_options)
  return xs
