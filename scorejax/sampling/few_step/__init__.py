"""Few-step samplers: 5-50 score evaluations, for every SDE, from the same score function.

    x, nfe = few_step_sample(key, sde, score_fn, shape, method="dpm_solver++_3m", n_steps=20)

Each method is a pure function `method(key, model, grid, x_T, **options) -> (x, nfe)`
over a `lax.scan` of its steps, written in the SDE's own (alpha, sigma, lambda) (see
`grid`), so VE, VP, sub-VP and the cosine SDE run through the same code. The grid
is `scorejax.sampling.schedules.time_steps(sde, n_steps, schedule, eps)`. `nfe` is
the exact number of score evaluations per sample (a Python int).

| method | order | evaluations | paper |
| --- | --- | --- | --- |
| euler | 1 | n | probability-flow ODE ([SDE] Eq. 13), Euler in t |
| ddim (eta) | 1 | n | Song, Meng & Ermon 2021, Eq. 12 (eta = 0: DPM-Solver-1) |
| heun (s_churn, ...) | 2 | 2n | Karras et al. 2022, Alg. 1 / 2 |
| dpm_solver_2 / _3 | 2 / 3 | 2n / 3n | Lu et al. 2022a, Alg. 1 / 2 (singlestep) |
| dpm_solver++_2m / _3m | 2 / 3 | n | Lu et al. 2022b, Alg. 2 (multistep, data prediction) |
| dpm_solver++_2m_sde | 2 (weak 1) | n | Lu et al. 2022b, SDE-DPM-Solver++(2M) |
| unipc (order 1-3) | order + 1 | n | Zhao et al. 2023, UniP + UniC (bh2) |
| ipndm (order 1-4) | 2 on these grids (4 on a grid uniform in sigma/alpha) | n | Zhang & Chen 2023, iPNDM |
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

from scorejax import checks
from scorejax import sde as sde_lib
from scorejax.sampling.denoise import tweedie_denoise
from scorejax.sampling.few_step.dpm_solver import dpm_solver_2, dpm_solver_3
from scorejax.sampling.few_step.first_order import ddim, euler
from scorejax.sampling.few_step.grid import Grid, Model
from scorejax.sampling.few_step.heun import heun
from scorejax.sampling.few_step.multistep import (dpm_solver_pp_2m, dpm_solver_pp_2m_sde,
                                                  dpm_solver_pp_3m, ipndm, unipc)
from scorejax.sampling.schedules import SAMPLING_EPS, TIME_SCHEDULES, time_steps

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class FewStepMethod:
  """A few-step method, the schedule it runs best with, and whether it draws noise."""
  fn: Callable
  schedule: str
  stochastic: bool = False


FEW_STEP_METHODS: dict[str, FewStepMethod] = {
    "euler": FewStepMethod(euler, "quadratic"),
    "ddim": FewStepMethod(ddim, "quadratic"),
    "heun": FewStepMethod(heun, "log_snr"),
    "dpm_solver_2": FewStepMethod(dpm_solver_2, "log_snr"),
    "dpm_solver_3": FewStepMethod(dpm_solver_3, "log_snr"),
    "dpm_solver++_2m": FewStepMethod(dpm_solver_pp_2m, "log_snr"),
    "dpm_solver++_3m": FewStepMethod(dpm_solver_pp_3m, "log_snr"),
    "dpm_solver++_2m_sde": FewStepMethod(dpm_solver_pp_2m_sde, "log_snr", stochastic=True),
    "unipc": FewStepMethod(unipc, "log_snr"),
    "ipndm": FewStepMethod(ipndm, "log_snr"),
}


def default_method(sde: sde_lib.SDE, n_steps: int) -> str:
  """The recommended method for this SDE and step count (docs/sampling.md, measured by
  bench/bench_few_step.py on a 64-D mixture with the exact score).

  15 steps or more: "unipc" (log-SNR grid; |dlogp| <= 0.3 nats at 15-50 steps under VE,
  VP, sub-VP and cosine VP). 6-14 steps: "dpm_solver++_2m", within 1.5 nats at 8-14
  steps (2.6-4.3 at 6), where the third-order multistep methods lose 2-7 nats in their
  final steps, which they run at lowered order below 15 steps (`lower_order_final`).
  5 steps or fewer: "unipc" again: nothing is accurate there (5-10 nats off) and its
  weights are the closest. The same choice was best under every SDE, so `sde` does not
  enter (yet).
  """
  del sde
  if 6 <= int(n_steps) < 15:
    return "dpm_solver++_2m"
  return "unipc"


# The noise level sigma / alpha at which the few-step samplers stop by default: VE's
# sigma_min and the VP SDE's level at t = SAMPLING_EPS (both ~0.01, log-SNR ~4.6).
FINAL_NOISE = 0.01


def default_eps(sde: sde_lib.SDE) -> float:
  """The default time floor: where sigma / alpha falls to `FINAL_NOISE`, and >= `SAMPLING_EPS`.

  This is SAMPLING_EPS = 1e-3 for VE (sigma_min = 0.01) and VP (sigma(1e-3) = 0.0105),
  but 0.027 for sub-VP, whose sigma(t) ~ beta_min t is 1e-4 at t = 1e-3: at log-SNR
  9.1 its grid would stretch over 4.5 units of log-SNR more than VP's, where nothing
  is left to denoise, and a few-step grid uniform in log-SNR would spend a third of
  its steps there (see docs/sampling.md for the measurements). The price: sub-VP's
  alpha(0.027) = 0.995, so its samples come out 0.5% contracted towards 0.
  """
  with jax.ensure_compile_time_eval():  # a Python float, also while tracing
    t = float(sde.t_of_log_snr(jnp.asarray(-math.log(FINAL_NOISE), jnp.float32)))
  return max(SAMPLING_EPS, t) if math.isfinite(t) else SAMPLING_EPS


def few_step_sample(key: Array, sde: sde_lib.SDE, score_fn: Callable[[Array, Array], Array],
                    shape: tuple[int, ...], *, method: str | None = None, n_steps: int = 20,
                    schedule: str | None = None, eps: float | None = None,
                    denoise: bool = False, **options) -> tuple[Array, int]:
  """Samples x_T from the prior and integrates the reverse process in `n_steps` steps.

  method: a `FEW_STEP_METHODS` name, or None for `default_method(sde, n_steps)`;
  schedule: a `TIME_SCHEDULES` name, or None for the method's; eps: the time floor
  (None: `default_eps(sde)`); denoise: a final Tweedie step E[x_0 | x_eps] (one more
  evaluation); options: the method's own keywords (ddim's eta, heun's s_churn, ...,
  unipc's and ipndm's order). Returns (samples, nfe per sample).
  """
  method = default_method(sde, n_steps) if method is None else method
  if method not in FEW_STEP_METHODS:
    raise ValueError(f"method={method!r} is not one of {sorted(FEW_STEP_METHODS)}")
  spec = FEW_STEP_METHODS[method]
  schedule = spec.schedule if schedule is None else schedule
  if schedule not in TIME_SCHEDULES:
    raise ValueError(f"schedule={schedule!r} is not one of {sorted(TIME_SCHEDULES)}")
  eps = default_eps(sde) if eps is None else eps
  checks.check_time_floor(eps, sde.T, where="few_step_sample", default=default_eps(sde))
  checks.check_score_shape(score_fn, tuple(shape), checks.default_float_dtype(),
                           where="few_step_sample")
  eps = float(eps)
  prior_key, key = jax.random.split(key)
  x_T = sde.prior_sampling(prior_key, shape)
  grid = Grid.of(sde, time_steps(sde, n_steps, schedule, eps))
  x, nfe = spec.fn(key, Model(sde, score_fn), grid, x_T, **options)
  if denoise:
    x = tweedie_denoise(sde, score_fn, x, eps)
    nfe += 1
  return x, nfe


__all__ = ["FEW_STEP_METHODS", "FINAL_NOISE", "FewStepMethod", "default_eps", "default_method",
           "few_step_sample", "time_steps"]
