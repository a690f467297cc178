"""Conversions between the score, the noise, the data and the velocity prediction.

For the Gaussian kernel x_t = alpha x_0 + sigma z of every SDE in `scorejax.sde`,
a network may be trained to output any of four equivalent quantities (Kingma et
al. 2021, App. "parameterizations"; Salimans & Ho 2022, Sec. 4 and App. D):

    score  s    = grad log p_t(x) = -E[z | x] / sigma            ([SDE] Eq. 7's target)
    eps    e    = E[z | x] = -sigma s                             (Ho et al. 2020, Eq. 11)
    x0     d    = E[x_0 | x] = (x + sigma^2 s) / alpha            (Tweedie; Efron 2011)
    v      v    = alpha e - sigma d                               (Salimans & Ho 2022, Eq. 9)

Every function takes alpha and sigma already broadcastable against x (use
`scorejax.sde.batch_broadcast` on per-example (B,) values); none depends on the SDE.
`OUTPUT_TO_SCORE` maps a network's output kind (an SDE's `model_output`) to the score.
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax

Array = jax.Array


def eps_from_score(score: Array, sigma: Array) -> Array:
  return -sigma * score


def score_from_eps(eps: Array, sigma: Array) -> Array:
  return -eps / sigma


def x0_from_score(x: Array, score: Array, alpha: Array, sigma: Array) -> Array:
  """Tweedie's formula: E[x_0 | x_t] = (x_t + sigma^2 grad log p_t(x_t)) / alpha."""
  return (x + sigma**2 * score) / alpha


def score_from_x0(x: Array, x0: Array, alpha: Array, sigma: Array) -> Array:
  return (alpha * x0 - x) / sigma**2


def x0_from_eps(x: Array, eps: Array, alpha: Array, sigma: Array) -> Array:
  return (x - sigma * eps) / alpha


def eps_from_x0(x: Array, x0: Array, alpha: Array, sigma: Array) -> Array:
  return (x - alpha * x0) / sigma


def v_from_eps_x0(eps: Array, x0: Array, alpha: Array, sigma: Array) -> Array:
  return alpha * eps - sigma * x0


def eps_from_v(x: Array, v: Array, alpha: Array, sigma: Array) -> Array:
  """From v = alpha eps - sigma x0 and x = alpha x0 + sigma eps: eps = (sigma x + alpha v) / (alpha^2 + sigma^2)."""
  return (sigma * x + alpha * v) / (alpha**2 + sigma**2)


def score_from_v(x: Array, v: Array, alpha: Array, sigma: Array) -> Array:
  return score_from_eps(eps_from_v(x, v, alpha, sigma), sigma)


def _score_output(x, output, alpha, sigma):
  del x, alpha, sigma
  return output


OUTPUT_TO_SCORE: Mapping[str, Callable[[Array, Array, Array, Array], Array]] = {
    "score": _score_output,
    "eps": lambda x, out, alpha, sigma: score_from_eps(out, sigma),
    "x0": lambda x, out, alpha, sigma: score_from_x0(x, out, alpha, sigma),
    "v": score_from_v,
}


def score_from_output(kind: str, x: Array, output: Array, alpha: Array, sigma: Array) -> Array:
  """The score from a network output of `kind` (a key of `OUTPUT_TO_SCORE`) at x."""
  if kind not in OUTPUT_TO_SCORE:
    raise ValueError(f"unknown model output kind {kind!r}; choose one of {sorted(OUTPUT_TO_SCORE)}")
  return OUTPUT_TO_SCORE[kind](x, output, alpha, sigma)
