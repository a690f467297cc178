"""Figures of a model: 2-D samples and score fields, denoising trajectories."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from scorejax import data
from scorejax import sde as sde_lib
from scorejax.report import images
from scorejax.sampling import pc_trajectory
from scorejax.toy import datasets, mixture

FIELD_TIMES = (0.05, 0.3)


def write_2d_figures(sde: sde_lib.SDE, score_fn, samples: np.ndarray, step: int, path: str, *,
                     toy_name: str | None = None, seed: int = 0) -> list[str]:
  """Scatter of 2-D samples (over the data), and the learned vs true score fields.

  `score_fn(x, t)` is the model's. With `toy_name` (a `toy.datasets.TOY_2D` set) the
  scatter shows that set's fixed test points (`data.toy_eval_pool(toy_name, seed)`),
  and where the set is a Gaussian mixture (`toy.datasets.ANALYTIC_2D`) the true score
  field is drawn beside the learned one. Returns the written paths.
  """
  reference = None
  if toy_name is not None:
    reference = data.toy_eval_pool(toy_name, seed, num=samples.shape[0])
  paths = [images.save_scatter_2d(samples, path, reference=reference, title=f"step {step}")]
  for t in FIELD_TIMES:
    fields = {"learned": _field(score_fn, t)}
    if toy_name in datasets.ANALYTIC_2D:
      fields["true"] = _field(mixture.marginal_score_fn(datasets.ANALYTIC_2D[toy_name](), sde), t)
    paths.append(images.save_score_field_2d(fields, path[:-4] + f"_score_t{t:g}.png",
                                            title=f"t = {t:g}"))
  return paths


def _field(score_fn, t: float):
  # Not jitted: score_fn closes over this snapshot's parameters, so a jitted field would
  # be a new program at every snapshot; op by op, each operation compiles once per run.
  return lambda pts: np.asarray(score_fn(jnp.asarray(pts), jnp.full((len(pts),), t)))


def _none_or_name(name) -> str | None:
  return None if str(name).lower() == "none" else name


def write_trajectory(sde: sde_lib.SDE, score_fn, key, path: str, *, sampling: Any,
                     data_shape: tuple[int, ...], inverse_scaler: Callable, n_examples: int = 8,
                     max_frames: int = 10) -> str:
  """A strip of x_t along one PC run per example (rows: examples, columns: t from T to eps).

  `sampling`: the config's `sampling` part (predictor, corrector, snr, n_steps_each);
  `inverse_scaler` maps the model's range to [0, 1] images.
  """
  n_steps = sde.N
  n_frames = max(f for f in range(1, max_frames + 1) if n_steps % f == 0)
  frames, ts = jax.jit(lambda k: pc_trajectory(
      k, sde, score_fn, (n_examples,) + tuple(data_shape), n_frames=n_frames,
      predictor=_none_or_name(sampling.predictor), corrector=_none_or_name(sampling.corrector),
      snr=float(sampling.snr), n_corrector_steps=int(sampling.n_steps_each)))(key)
  images.save_trajectory_strip(np.asarray(inverse_scaler(frames)), np.asarray(ts), path)
  return path
