"""`--mode=sample`: samples from the newest checkpoint of a workdir.

The files go to their own folder, never over the training snapshots
(`workdir/samples/step_XXXXXXXX.png`) of the same step:

    workdir/samples/sample_mode/step_XXXXXXXX_<sampler>.png   the grid (2-D data: a scatter,
                                                                plus `_score_t*.png` fields)
    workdir/samples/sample_mode/step_XXXXXXXX_<sampler>.npy   the samples in [0, 1]
    workdir/samples/sample_mode/trajectory_XXXXXXXX_<sampler>.png   a denoising strip (images)

`<sampler>` names the config's sampler (`sampler_name`), e.g. `pc_reverse_diffusion_langevin`
or `ode`, so grids of one checkpoint drawn with different samplers sit side by side.
The checkpoints are only read (`workdir/checkpoints` may be read-only).
"""

from __future__ import annotations

import os

import jax

from scorejax.evaluation import inverse
from scorejax.report import figures
from scorejax.training import parallel, setup
from scorejax.training.setup import Components, SampleSettings
from scorejax.training.state import TrainState

SAMPLE_MODE_DIR = os.path.join("samples", "sample_mode")
# config.sampling.task -> the writer of `--mode=sample` (the default 'unconditional': the grid
# below; 'inpaint', 'colorize', 'class', 'interpolate': scorejax.evaluation.tasks).
TASKS = {
    # workdir/samples/sample_mode/inverse_<operator>_step_XXXXXXXX.{png,json} (docs/inverse.md)
    "inverse": inverse.reconstruct_from_workdir,
}


def sampler_name(sampling) -> str:
  """A file-name-safe name of the config's sampler (`config.sampling`): 'ode', or
  'pc_<predictor>_<corrector>' ('none' for an absent one)."""
  method = str(sampling.method).lower()
  if method == "pc":
    parts = [method, str(sampling.predictor or "none"), str(sampling.corrector or "none")]
  else:
    parts = [method]
  return "_".join(p.lower().replace(os.sep, "-") for p in parts)


def sample_path(workdir: str, step: int, sampling) -> str:
  """Where `--mode=sample` writes the grid of checkpoint `step` (see the module docstring)."""
  return os.path.join(workdir, SAMPLE_MODE_DIR, f"step_{step:08d}_{sampler_name(sampling)}.png")


def sample_from_workdir(config, workdir: str) -> str:
  """Restores the newest checkpoint and writes a grid of EMA samples; returns its path.

  The config edge of `--mode=sample`: `write_samples` takes what is read here. Another
  `config.sampling.task` (if the config has one) runs its own writer from `TASKS`.
  """
  task = str(config.sampling.get("task", "unconditional"))
  if task not in ("unconditional", "sample"):
    if task not in TASKS:
      raise ValueError(f"config.sampling.task={task!r} is not one of {['unconditional', *TASKS]}")
    return TASKS[task](config, workdir)
  parallel.maybe_initialize_distributed()
  c = setup.build_components(config)
  s = SampleSettings.from_config(config)
  state, step = setup.load_state(c, workdir, seed=s.seed,
                                 snapshot_freq=int(config.training.snapshot_freq))
  return write_samples(c, s, state, step, workdir)


def write_samples(c: Components, s: SampleSettings, state: TrainState, step: int,
                  workdir: str) -> str:
  """The sample grid of `state` (2-D: scatter and score fields), plus a denoising
  trajectory strip for images (key fold_in(key(seed + 2), step)), under
  `workdir/samples/sample_mode/`; returns the grid's path. The samples are those of
  the training snapshot of `step` with the same sampler (key fold_in(key(seed + 1), step))."""
  path = setup.save_snapshot_samples(c, s, state, step, workdir, None,
                                     path=sample_path(workdir, step, s.sampling))
  if jax.process_index() == 0 and len(c.data_shape) == 3:
    key = jax.random.fold_in(jax.random.key(s.seed + 2), step)
    directory, name = os.path.split(path)
    figures.write_trajectory(c.sde, setup.ema_score_fn(c, state), key,
                             os.path.join(directory, "trajectory_" + name[len("step_"):]),
                             sampling=s.sampling, data_shape=c.data_shape,
                             inverse_scaler=c.inverse_scaler)
  return path
