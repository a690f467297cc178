"""Figures of a trained model: 2-D samples and score fields, denoising trajectories."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from scorejax import data
from scorejax.report import images as plots
from scorejax.toy import datasets as toy_data
from scorejax.toy import mixture as analytic
from scorejax.sampling import pc_trajectory

FIELD_TIMES = (0.05, 0.3)


def write_2d_figures(config, c, score_fn, samples: np.ndarray, step: int, path: str) -> list[str]:
  """Scatter of 2-D samples over the data, and the learned vs true score fields.

  `score_fn(x, t)` is the model's; the true field is drawn where the toy set is a
  Gaussian mixture (`toy_data.ANALYTIC_2D`). Returns the written paths.
  """
  name = config.data.get("toy_name", "")
  reference = None
  if config.data.dataset.upper() == "TOY2D":
    reference = data.toy_eval_pool(name, int(config.seed), num=samples.shape[0])
  paths = [plots.save_scatter_2d(samples, path, reference=reference, title=f"step {step}")]
  for t in FIELD_TIMES:
    fields = {"learned": _field(score_fn, t)}
    if name in toy_data.ANALYTIC_2D:
      fields["true"] = _field(analytic.marginal_score_fn(toy_data.ANALYTIC_2D[name](), c.sde), t)
    paths.append(plots.save_score_field_2d(fields, path[:-4] + f"_score_t{t:g}.png", title=f"t = {t:g}"))
  return paths


def _field(score_fn, t: float):
  fn = jax.jit(lambda x: score_fn(x, jnp.full((x.shape[0],), t)))
  return lambda pts: np.asarray(fn(jnp.asarray(pts)))


def write_trajectory(config, c, score_fn, key, path: str, *, n_examples: int = 8,
                     max_frames: int = 10) -> str:
  """A strip of x_t along one PC run per example (rows: examples, columns: t from T to eps)."""
  n_steps = c.sde.N
  n_frames = max(f for f in range(1, max_frames + 1) if n_steps % f == 0)
  s = config.sampling
  frames, ts = jax.jit(lambda k: pc_trajectory(
      k, c.sde, score_fn, (n_examples,) + c.data_shape, n_frames=n_frames,
      predictor=None if str(s.predictor).lower() == "none" else s.predictor,
      corrector=None if str(s.corrector).lower() == "none" else s.corrector,
      snr=float(s.snr), n_corrector_steps=int(s.n_steps_each)))(key)
  images = np.asarray(c.inverse_scaler(frames))
  plots.save_trajectory_strip(images, np.asarray(ts), path)
  return path


def write_sample_figures(config, c, score_fn, key, samples: np.ndarray, step: int,
                         workdir: str) -> list[str]:
  """What `--mode=sample` writes besides the grid: trajectory strip or 2-D figures."""
  out = os.path.join(workdir, "samples")
  os.makedirs(out, exist_ok=True)
  if len(c.data_shape) == 3:
    return [write_trajectory(config, c, score_fn, key, os.path.join(out, f"trajectory_{step:08d}.png"))]
  return write_2d_figures(config, c, score_fn, samples.reshape(samples.shape[0], -1)[:, :2], step,
                          os.path.join(out, f"scatter_{step:08d}.png"))
