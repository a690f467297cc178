"""The probability-flow ODE as an invertible encoder: data <-> latents, and interpolation.

The probability-flow ODE ([SDE] Song et al. 2021, Eq. 13)

    dx/dt = f(x, t) - 1/2 g(t)^2 grad log p_t(x)

maps p_eps to p_T deterministically and invertibly ([SDE] Sec. 4.3, "uniquely
identifiable encoding"). `encode` integrates it forward from t = eps to T, `decode`
backward from T to eps (the ODE sampler's `scorejax.sampling.solve_reverse_ode`), both
with the same diffrax solvers and adaptive step control (`scorejax.sampling.solvers`).
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
from scorejax.sampling.schedules import SAMPLING_EPS
from scorejax.sampling.solvers import evaluations_per_solve, get_solver

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


def _check_eps(sde: sde_lib.SDE, eps: float) -> None:
  if not 0.0 < float(eps) < float(sde.T):
    raise ValueError(f"eps={eps} must lie in (0, T={sde.T})")


def solve_forward_ode(sde: sde_lib.SDE, score_fn: ScoreFn, x: Array, *, eps: float,
                      rtol: float, atol: float, solver: str = "tsit5",
                      max_steps: int = 16384) -> tuple[Array, Array]:
  """Integrates the probability-flow ODE from eps up to T; returns (x_T, nfe).

  A failed solve (e.g. `max_steps` reached) gives NaN latents rather than an exception,
  as the likelihood's solve does.
  """
  rsde = sde.reverse(score_fn, probability_flow=True)
  ode_solver = get_solver(solver)
  batch = x.shape[0]

  def vector_field(t, x, args):
    # rsde.sde's drift is f - 1/2 g^2 s: the ODE's right-hand side in forward time.
    return rsde.sde(x, jnp.full((batch,), t, x.dtype))[0]

  sol = diffrax.diffeqsolve(
      diffrax.ODETerm(vector_field), ode_solver, t0=eps, t1=sde.T, dt0=None, y0=x,
      stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
      saveat=diffrax.SaveAt(t1=True), max_steps=max_steps, throw=False)
  ok = sol.result == diffrax.RESULTS.successful
  return (jnp.where(ok, sol.ys[-1], jnp.nan),
          evaluations_per_solve(ode_solver, sol.stats["num_steps"]))


def _per_example(solve: Callable[[Array], tuple[Array, Array]], x: Array) -> tuple[Array, Array]:
  """`solve` (a batch -> (batch, nfe)) applied to every example on its own, vmapped."""
  if x.ndim < 2:
    raise ValueError(f"expected a batch (B, *data_shape), got shape {x.shape}")
  out, nfe = jax.vmap(lambda xi: solve(xi[None]))(x)
  return out[:, 0], jnp.max(nfe)


def encode(sde: sde_lib.SDE, score_fn: ScoreFn, x: Array, *, rtol: float = 1e-5,
           atol: float = 1e-5, eps: float = SAMPLING_EPS, solver: str = "tsit5",
           max_steps: int = 16384) -> tuple[Array, Array]:
  """Data x (B, ...) at t = eps -> latents z at t = T along the probability-flow ODE.

  Returns (z, nfe), z shaped like x.
  """
  _check_eps(sde, eps)
  return _per_example(
      lambda xi: solve_forward_ode(sde, score_fn, xi, eps=eps, rtol=rtol, atol=atol,
                                   solver=solver, max_steps=max_steps), x)


def decode(sde: sde_lib.SDE, score_fn: ScoreFn, z: Array, *, rtol: float = 1e-5,
           atol: float = 1e-5, eps: float = SAMPLING_EPS, solver: str = "tsit5",
           max_steps: int = 16384) -> tuple[Array, Array]:
  """Latents z (B, ...) at t = T -> data at t = eps: the ODE sampler's path
  (`solve_reverse_ode`) from given latents.

  Returns (x, nfe). `decode(encode(x))` returns x up to the solver's tolerance.
  """
  _check_eps(sde, eps)
  return _per_example(
      lambda zi: solve_reverse_ode(sde, score_fn, zi, eps=eps, rtol=rtol, atol=atol,
                                   solver=solver, max_steps=max_steps), z)


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
  `ode_options`: encode/decode's keywords (rtol, atol, eps, solver, max_steps).
  Returns (n, *x_a.shape[1:]).
  """
  chex.assert_equal_shape([x_a, x_b])
  if x_a.shape[0] != 1:
    raise ValueError(f"interpolate takes one example per end, (1, ...); got {x_a.shape}")
  z, _ = encode(sde, score_fn, jnp.concatenate([x_a, x_b]), **ode_options)
  zs = slerp(z[0], z[1], jnp.linspace(0.0, 1.0, int(n)))
  xs, _ = decode(sde, score_fn, zs, **ode_options)
  return xs
