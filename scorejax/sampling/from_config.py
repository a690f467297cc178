"""The sampler a config's `sampling` part asks for (score_sde's field names)."""

from __future__ import annotations

import functools
from typing import Callable

import jax

from scorejax import checks
from scorejax import sde as sde_lib
from scorejax.sampling.correctors import get_corrector
from scorejax.sampling.ode import ode_sample
from scorejax.sampling.pc import pc_sample
from scorejax.sampling.predictors import get_predictor
from scorejax.sampling.schedules import SAMPLING_EPS

Array = jax.Array
SAMPLING_METHODS = ("pc", "ode")


def _none_or_name(name: str | None) -> str | None:
  return None if name is None or str(name).lower() == "none" else str(name)


def get_sampling_fn(sampling, sde: sde_lib.SDE, shape: tuple[int, ...]
                    ) -> Callable[[Array, Callable[[Array, Array], Array]], tuple[Array, Array]]:
  """`sample(key, score_fn) -> (x, nfe)` per `sampling.method` ('pc' or 'ode').

  `sampling` is the config's `sampling` part (`config.sampling`). Reads `method`,
  `eps` (the time floor, default `SAMPLING_EPS`), `predictor`, `corrector`, `snr`,
  `n_steps_each`, `noise_removal` (PC) and `rtol` / `atol` (ODE, default 1e-5).

  Raises ValueError here, before anything is sampled, for an unknown method,
  predictor or corrector, or `sampling.eps` outside (0, sde.T); the returned
  `sample` checks the score function's output shape when it is traced.
  """
  s = sampling
  method = str(s.method).lower()
  eps = float(s.get("eps", SAMPLING_EPS))
  checks.check_time_floor(eps, sde.T, where="get_sampling_fn", default=SAMPLING_EPS,
                          name="config.sampling.eps")
  if method == "pc":
    get_predictor(_none_or_name(s.predictor))  # unknown names fail here, listing the valid ones
    get_corrector(_none_or_name(s.corrector))
    sampler = functools.partial(
        pc_sample, predictor=_none_or_name(s.predictor), corrector=_none_or_name(s.corrector),
        snr=float(s.snr), n_corrector_steps=int(s.n_steps_each), eps=eps,
        denoise=bool(s.noise_removal))
  elif method == "ode":
    sampler = functools.partial(ode_sample, rtol=float(s.get("rtol", 1e-5)),
                                atol=float(s.get("atol", 1e-5)), eps=eps,
                                denoise=bool(s.noise_removal))
  else:
    raise ValueError(f"config.sampling.method={s.method!r} is not one of {SAMPLING_METHODS}")

  def sample(key: Array, score_fn) -> tuple[Array, Array]:
    return sampler(key, sde, score_fn, shape)

  return sample
