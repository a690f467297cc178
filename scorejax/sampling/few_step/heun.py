"""EDM's second-order Heun sampler (Karras, Aittala, Aila & Laine 2022, Alg. 1 and 2).

EDM writes the probability-flow ODE of any schedule in the scaled variables
x~ = x / alpha and sigma~ = sigma / alpha = exp(-lambda) (Karras et al. 2022, Eq. 4
and Table 1): dx~ / dsigma~ = (x~ - D(x~; sigma~)) / sigma~, with D the data
prediction. Each step is Heun's method in sigma~ (2 evaluations). With `s_churn` > 0
(Alg. 2) each step first raises the noise level by gamma = min(s_churn / n, sqrt(2) - 1)
when sigma~ lies in [s_tmin, s_tmax], adding fresh noise of std
s_noise sqrt(sigma^_2 - sigma~^2); s_churn = 0 is the deterministic Alg. 1.
The raised level's time is the SDE's t_of_log_snr(-log sigma^).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from scorejax.sampling.few_step.grid import Grid, Model

Array = jax.Array


def heun(key: Array, model: Model, grid: Grid, x: Array, *, s_churn: float = 0.0,
         s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0
         ) -> tuple[Array, int]:
  sde = model.sde
  n = grid.n_steps
  sig = jnp.exp(-grid.lam)  # sigma~ of every grid point
  keys = jax.random.split(key, n)
  gamma_max = min(s_churn / n, math.sqrt(2.0) - 1.0)

  def slope(x_scaled, sig_now, t):
    alpha = sde.alpha(t)
    return (x_scaled - model.x0(alpha * x_scaled, t)) / sig_now

  def step(x_scaled, inputs):
    k, sig_now, t_now, sig_next, t_next = inputs
    if gamma_max > 0.0:
      gamma = jnp.where((sig_now >= s_tmin) & (sig_now <= s_tmax), gamma_max, 0.0)
      sig_hat = sig_now * (1.0 + gamma)
      x_scaled = x_scaled + jnp.sqrt(sig_hat**2 - sig_now**2) * s_noise * jax.random.normal(
          k, x_scaled.shape, x_scaled.dtype)
      t_hat = jnp.where(gamma > 0.0, model.t_at(-jnp.log(sig_hat)), t_now)
    else:
      sig_hat, t_hat = sig_now, t_now
    d = slope(x_scaled, sig_hat, t_hat)
    x_euler = x_scaled + (sig_next - sig_hat) * d
    d_next = slope(x_euler, sig_next, t_next)
    return x_scaled + (sig_next - sig_hat) * 0.5 * (d + d_next), None

  x_scaled, _ = jax.lax.scan(step, x / grid.alpha[0],
                             (keys, sig[:-1], grid.t[:-1], sig[1:], grid.t[1:]))
  return grid.alpha[-1] * x_scaled, 2 * n
