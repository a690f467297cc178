"""What every few-step method reads: the time grid's schedule values and the model's predictions.

A method steps the reverse process over a grid t_0 = T > t_1 > ... > t_n = eps.
`Grid` holds, per grid point, t, alpha(t), sigma(t) and lambda(t) = log(alpha / sigma)
(the SDE's schedule view, `scorejax.sde`), so every method is written once in
(alpha, sigma, lambda) and runs for VE, VP, sub-VP and the cosine SDE alike.
`Model` evaluates the score function at one time for the whole batch and returns
it as the data prediction x0 = E[x_0 | x_t] (Tweedie) or the noise prediction
eps = E[z | x_t] (`scorejax.parameterization`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from scorejax import parameterization

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Grid:
  """Per-point schedule values of a decreasing time grid, each (n + 1,)."""
  t: Array
  alpha: Array
  sigma: Array
  lam: Array

  @classmethod
  def of(cls, sde, ts: Array) -> "Grid":
    alpha, sigma = sde.marginal_coeffs(ts)
    alpha = jnp.broadcast_to(alpha, ts.shape)
    return cls(t=ts, alpha=alpha, sigma=sigma, lam=jnp.log(alpha) - jnp.log(sigma))

  @property
  def n_steps(self) -> int:
    return self.t.shape[0] - 1

  def steps(self) -> "Grid":
    """The per-step view: the start points (the first n), for `lax.scan`'s xs."""
    return jax.tree.map(lambda a: a[:-1], self)

  def ends(self) -> "Grid":
    """The end points of the steps (the last n)."""
    return jax.tree.map(lambda a: a[1:], self)


@dataclasses.dataclass(frozen=True)
class Model:
  """The score function of an SDE seen as a data or noise predictor at a scalar time."""
  sde: object
  score_fn: ScoreFn

  def score(self, x: Array, t: Array) -> Array:
    out = self.score_fn(x, jnp.full((x.shape[0],), t, x.dtype))
    return out

  def x0(self, x: Array, t: Array) -> Array:
    """E[x_0 | x_t] = (x + sigma^2 s) / alpha (Tweedie)."""
    alpha, sigma = self.sde.marginal_coeffs(t)
    return parameterization.x0_from_score(x, self.score(x, t), alpha, sigma)

  def eps(self, x: Array, t: Array) -> Array:
    """E[z | x_t] = -sigma s."""
    return parameterization.eps_from_score(self.score(x, t), self.sde.sigma(t))

  def t_at(self, lam: Array) -> Array:
    """The time of log-SNR `lam`."""
    return self.sde.t_of_log_snr(lam)
