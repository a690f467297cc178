"""First-order few-step methods: probability-flow Euler and DDIM.

euler  Euler's method on the probability-flow ODE in t ([SDE] Eq. 13),
       dx/dt = f(t) x - 1/2 g(t)^2 s(x, t).
ddim   DDIM (Song, Meng & Ermon 2021, Eq. 12) in the SDE's (alpha, sigma):

           x_t = alpha_t x0 + sqrt(sigma_t^2 - c^2) eps + c z,
           c = eta sigma_t sqrt(1 - exp(-2 h)),  h = lambda_t - lambda_s,

       with x0, eps the data and noise predictions at (x_s, s). For VP this is
       DDIM's sigma_t(eta) (Eq. 16); eta = 1 draws from the Gaussian posterior
       q(x_t | x_s, x0) and eta = 0 is deterministic and equals the first-order
       exponential integrator DPM-Solver-1 (Lu et al. 2022a, Eq. 3.7 with k = 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from scorejax.sampling.few_step.grid import Grid, Model

Array = jax.Array


def euler(key: Array, model: Model, grid: Grid, x: Array) -> tuple[Array, int]:
  del key
  sde = model.sde

  def step(x, pts):
    t, t_next = pts
    drift = sde.drift_coeff(t) * x - 0.5 * sde.g2(t) * model.score(x, t)
    return x + (t_next - t) * drift, None

  x, _ = jax.lax.scan(step, x, (grid.t[:-1], grid.t[1:]))
  return x, grid.n_steps


def ddim(key: Array, model: Model, grid: Grid, x: Array, *, eta: float = 0.0) -> tuple[Array, int]:
  keys = jax.random.split(key, grid.n_steps)

  def step(x, inputs):
    k, s, e = inputs
    x0 = model.x0(x, s.t)
    noise_pred = (x - s.alpha * x0) / s.sigma
    h = e.lam - s.lam
    c = eta * e.sigma * jnp.sqrt(-jnp.expm1(-2.0 * h))
    x = e.alpha * x0 + jnp.sqrt(e.sigma**2 - c**2) * noise_pred
    if eta != 0.0:
      x = x + c * jax.random.normal(k, x.shape, x.dtype)
    return x, None

  x, _ = jax.lax.scan(step, x, (keys, grid.steps(), grid.ends()))
  return x, grid.n_steps
