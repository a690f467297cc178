"""Singlestep DPM-Solver-2 and -3 (Lu, Zhou, Bao, Chen, Li & Zhu 2022a, Alg. 1 and 2).

The probability-flow ODE's exact solution from s to t (Lu et al. 2022a, Eq. 3.4),

    x_t = (alpha_t / alpha_s) x_s - alpha_t int_{lambda_s}^{lambda_t} exp(-lambda) eps(x, lambda) dlambda,

with the noise prediction eps expanded to order k in lambda. h = lambda_t - lambda_s;
intermediate points sit at lambda_s + r h (r1 = 1/2 for order 2; r1 = 1/3, r2 = 2/3 for
order 3), their times given by the SDE's t_of_log_snr. Order k costs k evaluations per step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from scorejax.sampling.few_step.grid import Grid, Model

Array = jax.Array


def _first_order(model, x, s_alpha, t_alpha, t_sigma, h, eps_s):
  """DPM-Solver-1 (Eq. 3.7): (alpha_t / alpha_s) x - sigma_t (e^h - 1) eps_s."""
  return (t_alpha / s_alpha) * x - t_sigma * jnp.expm1(h) * eps_s


def dpm_solver_2(key: Array, model: Model, grid: Grid, x: Array, *, r1: float = 0.5
                 ) -> tuple[Array, int]:
  """DPM-Solver-2 (Alg. 1)."""
  del key
  sde = model.sde

  def step(x, inputs):
    s, e = inputs
    h = e.lam - s.lam
    eps_s = model.eps(x, s.t)
    t1 = model.t_at(s.lam + r1 * h)
    a1, s1 = sde.marginal_coeffs(t1)
    u = _first_order(model, x, s.alpha, a1, s1, r1 * h, eps_s)
    eps_1 = model.eps(u, t1)
    x = (_first_order(model, x, s.alpha, e.alpha, e.sigma, h, eps_s)
         - e.sigma / (2.0 * r1) * jnp.expm1(h) * (eps_1 - eps_s))
    return x, None

  x, _ = jax.lax.scan(step, x, (grid.steps(), grid.ends()))
  return x, 2 * grid.n_steps


def dpm_solver_3(key: Array, model: Model, grid: Grid, x: Array, *, r1: float = 1.0 / 3.0,
                 r2: float = 2.0 / 3.0) -> tuple[Array, int]:
  """DPM-Solver-3 (Alg. 2)."""
  del key
  sde = model.sde

  def step(x, inputs):
    s, e = inputs
    h = e.lam - s.lam
    eps_s = model.eps(x, s.t)
    t1, t2 = model.t_at(s.lam + r1 * h), model.t_at(s.lam + r2 * h)
    a1, s1 = sde.marginal_coeffs(t1)
    a2, s2 = sde.marginal_coeffs(t2)
    u1 = _first_order(model, x, s.alpha, a1, s1, r1 * h, eps_s)
    d1 = model.eps(u1, t1) - eps_s
    u2 = (_first_order(model, x, s.alpha, a2, s2, r2 * h, eps_s)
          - s2 * (r2 / r1) * (jnp.expm1(r2 * h) / (r2 * h) - 1.0) * d1)
    d2 = model.eps(u2, t2) - eps_s
    x = (_first_order(model, x, s.alpha, e.alpha, e.sigma, h, eps_s)
         - e.sigma / r2 * (jnp.expm1(h) / h - 1.0) * d2)
    return x, None

  x, _ = jax.lax.scan(step, x, (grid.steps(), grid.ends()))
  return x, 3 * grid.n_steps
