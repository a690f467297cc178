"""The sampler a config's `sampling` part asks for (score_sde's field names)."""

from __future__ import annotations

import functools
from typing import Callable

import jax

from scorejax import checks
from scorejax import sde as sde_lib
from scorejax.sampling.correctors import get_corrector
from scorejax.sampling.few_step import FEW_STEP_METHODS, few_step_sample
from scorejax.sampling.ode import ode_sample
from scorejax.sampling.pc import pc_sample
from scorejax.sampling.predictors import get_predictor
from scorejax.sampling.schedules import SAMPLING_EPS, TIME_SCHEDULES

Array = jax.Array
SAMPLING_METHODS = ("pc", "ode") + tuple(FEW_STEP_METHODS)
DEFAULT_FEW_STEPS = 20  # `sampling.n_steps` when a config has none


def _none_or_name(name: str | None) -> str | None:
  return None if name is None or str(name).lower() == "none" else str(name)


def few_step_schedule(name: str | None) -> str | None:
  """`sampling.schedule` as `few_step_sample` takes it: None or 'default' -> None (the method's)."""
  if name is None or str(name).lower() in ("none", "default"):
    return None
  if str(name) not in TIME_SCHEDULES:
    raise ValueError(f"config.sampling.schedule={name!r} is not 'default' or one of "
                     f"{sorted(TIME_SCHEDULES)}")
  return str(name)


def get_sampling_fn(sampling, sde: sde_lib.SDE, shape: tuple[int, ...]
                    ) -> Callable[[Array, Callable[[Array, Array], Array]], tuple[Array, Array]]:
  """`sample(key, score_fn) -> (x, nfe)` per `sampling.method` (a `SAMPLING_METHODS` name).

  `sampling` is the config's `sampling` part (`config.sampling`). Reads `method`,
  `eps` (the time floor, default `SAMPLING_EPS`), `noise_removal` (the final Tweedie
  step; one more evaluation), and per method: `predictor`, `corrector`, `snr`,
  `n_steps_each` ('pc'); `rtol` / `atol` ('ode', default 1e-5); `n_steps` (default 20)
  and `schedule` ('default' or None: the method's own, else a `TIME_SCHEDULES` name)
  for the few-step methods (`FEW_STEP_METHODS`: 'unipc', 'dpm_solver++_3m', ...).

  Raises ValueError here, before anything is sampled, for an unknown method,
  predictor, corrector or schedule, or `sampling.eps` outside (0, sde.T); the
  returned `sample` checks the score function's output shape when it is traced.
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
  elif method in FEW_STEP_METHODS:
    n_steps = s.get("n_steps", None)
    n_steps = DEFAULT_FEW_STEPS if n_steps is None else int(n_steps)
    if n_steps < 1:
      raise ValueError(f"config.sampling.n_steps={n_steps} must be at least 1")
    sampler = functools.partial(few_step_sample, method=method, n_steps=n_steps,
                                schedule=few_step_schedule(s.get("schedule", None)), eps=eps,
                                denoise=bool(s.noise_removal))
  else:
    raise ValueError(f"config.sampling.method={s.method!r} is not one of {SAMPLING_METHODS}")

  def sample(key: Array, score_fn) -> tuple[Array, Array]:
    return sampler(key, sde, score_fn, shape)

  return sample
