"""Inpainting: samples of p(x_0 | x_0 = y where mask = 1) from an unconditional score.

    x, nfe = inpaint(key, sde, score_fn, y, mask)                   # the default, "guided"
    x, nfe = inpaint(key, sde, score_fn, y, mask, method="smc", n_particles=32, n_steps=500)

The known part of the result is y itself; the rest is sampled by one of
`INPAINT_METHODS`:

replace   score_sde's imputation ([SDE] Song et al. 2021, App. I.2): the known part
          re-drawn from the forward kernel at every step and pasted into the state
          (`replacement`, with score_sde's two defects fixed: the start and the last
          denoising step). The unknown part only ever sees a noisy copy of y, so where a
          few known coordinates decide the mode it often settles in the wrong one.
guided    replace, plus reconstruction guidance on the unknown part: the score of
          p_t(x | y) with p_t(y | x) ~ N(y; M x0_hat(x), r_t^2) around Tweedie's estimate
          (Chung et al. 2023; Song et al. 2023; `guidance.reconstruction_guidance`). The
          gradient through the score steers the unknown part toward the modes that
          explain y. The default: the best agreement at replace's number of evaluations.
smc       sequential Monte Carlo along one noising path of the known part, with guided
          proposals and reweighting (`smc`; Trippe et al. 2023, Wu et al. 2023): exact as
          the number of particles grows, at n_particles times the cost.

Measured by bench/bench_inpaint.py on the 48-D, 4-component mixture of
tests/test_controllable.py (exact score, VP SDE, 1024 samples, CPU). agree: among the
examples whose exact conditional is >= 99% sure of a component, the fraction inpainted
in it; calib: the exact conditional's mean probability of the sampled component (0.952
for exact samples, lower when modes are missed); cost per sample in score evaluations,
of which VJPs also take a vector-Jacobian product through the score:

| method | options | known | agree | calib | evals | VJPs |
| --- | --- | --- | --- | --- | --- | --- |
| replace | PC, 1000 steps | 1/2 | 0.995 | 0.994 | 2000 | 0 |
| replace | PC, 1000 steps | 1/4 | 0.838 | 0.754 | 2000 | 0 |
| guided (default) | PC, 1000 steps | 1/4 | 0.968 | 0.898 | 2000 | 2000 |
| guided | PC, 1000 steps, scale=2 | 1/4 | 0.992 | 0.928 | 2000 | 2000 |
| guided | PC without corrector, 1000 steps | 1/4 | 0.915 | 0.829 | 1000 | 1000 |
| smc | 8 particles, 500 steps | 1/4 | 0.982 | 0.916 | 4000 | 4000 |
| smc | 32 particles, 500 steps | 1/4 | 0.999 | 0.951 | 16000 | 16000 |
| replace | ddim (eta=1), 50 steps | 1/4 | 0.598 | 0.525 | 51 | 0 |
| guided | ddim (eta=1), 50 steps | 1/4 | 0.907 | 0.814 | 51 | 50 |

VE and sub-VP give the same within 0.015 (docs/controllable.md has the full table).

`replace` and `guided` run with the PC sampler (`sampler="pc"`, the default: any
predictor and corrector, `pc_sample`'s keywords) or a single-step few-step method
(`sampler` in "euler", "ddim", "heun", "dpm_solver_2", "dpm_solver_3" with n_steps,
schedule, eps, denoise and the method's keywords); `smc` runs its own reverse-diffusion
steps. `nfe` counts score evaluations per sample.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from scorejax import sde as sde_lib
from scorejax.controllable.guidance import reconstruction_guided_score
from scorejax.controllable.replacement import sample_with_replacement
from scorejax.controllable.smc import smc_inpaint
from scorejax.sampling.schedules import uniform_steps

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


def _replace(key, sde, score_fn, y, known, **options):
  return sample_with_replacement(key, sde, score_fn, y, known, **options)


def _guided(key, sde, score_fn, y, known, *, scale: float = 1.0, data_var: float = 1.0,
            **options):
  # The PC grid is uniform in t: its last steps are long next to t, and r_t^2 is floored
  # where a step would overshoot (`guidance.step_floored_variance`). The few-step grids
  # shrink their steps with t and are not floored.
  on_pc_grid = options.get("sampler", "pc") == "pc"
  n_steps = uniform_steps(sde, options.get("n_steps")) if on_pc_grid else None
  guided = reconstruction_guided_score(sde, score_fn, y, known, scale=scale, data_var=data_var,
                                       n_steps=n_steps)
  return sample_with_replacement(key, sde, guided, y, known, **options)


_METHODS = {"replace": _replace, "guided": _guided, "smc": smc_inpaint}
INPAINT_METHODS = tuple(_METHODS)
DEFAULT_INPAINT_METHOD = "guided"


def inpaint(key: Array, sde: sde_lib.SDE, score_fn: ScoreFn, y: Array, mask: Array, *,
            method: str | None = None, **options) -> tuple[Array, Array | int]:
  """Fills in x where mask = 0, given x = y where mask = 1.

  Args:
    key: a `jax.random` key.
    sde: the forward SDE the score belongs to.
    score_fn: `score_fn(x, t)`, the unconditional score of p_t.
    y: (B, *data_shape) the data; its values where mask = 0 are ignored.
    mask: 1 (or True) where y is known, 0 elsewhere; broadcastable to y (e.g. one
      (1, *data_shape) mask for the batch, or (3,) per channel).
    method: a name of `INPAINT_METHODS`, or None for `DEFAULT_INPAINT_METHOD`.
    **options: the method's keywords and its sampler's. replace and guided: `sampler`
      ("pc" or a single-step few-step method) and that sampler's keywords; guided also
      `scale` (1) and `data_var` (1) of `guidance.reconstruction_guidance`. smc:
      `n_particles` (8), `ess_threshold`, `scale`, `data_var`, `n_steps`, `eps`, `denoise`.

  Returns:
    (x, nfe): x shaped like y and equal to y wherever mask = 1; nfe the score
    evaluations per sample.
  """
  method = DEFAULT_INPAINT_METHOD if method is None else method
  if method not in _METHODS:
    raise ValueError(f"method={method!r} is not one of {list(INPAINT_METHODS)}")
  if y.ndim < 2:
    raise ValueError(f"y must be a batch (B, *data_shape), got shape {y.shape}")
  mask = jnp.asarray(mask)
  try:
    fits = np.broadcast_shapes(mask.shape, y.shape) == tuple(y.shape)
  except ValueError:
    fits = False
  if not fits:
    raise ValueError(f"mask of shape {mask.shape} does not broadcast to y's {y.shape}")
  if method == "smc":
    sampler = options.pop("sampler", "pc")
    if sampler != "pc":
      raise ValueError(f"method='smc' runs its own reverse-diffusion steps; it takes no "
                       f"sampler={sampler!r}")
  known = jnp.broadcast_to(mask > 0.5, y.shape)
  x, nfe = _METHODS[method](key, sde, score_fn, y, known, **options)
  return jnp.where(known, y, x), nfe
