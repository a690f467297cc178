"""`--mode=sample`: samples from the newest checkpoint of a workdir."""

from __future__ import annotations

import jax

from scorejax.report import figures
from scorejax.report.writer import MetricsWriter
from scorejax.training import parallel, setup
from scorejax.training.setup import Components, SampleSettings
from scorejax.training.state import TrainState


def sample_from_workdir(config, workdir: str) -> str:
  """Restores the newest checkpoint and writes a grid of EMA samples; returns its path.

  The config edge of `--mode=sample`: `write_samples` takes what is read here.
  """
  parallel.maybe_initialize_distributed()
  c = setup.build_components(config)
  s = SampleSettings.from_config(config)
  state, step = setup.load_state(c, workdir, seed=s.seed,
                                 snapshot_freq=int(config.training.snapshot_freq))
  return write_samples(c, s, state, step, workdir)


def write_samples(c: Components, s: SampleSettings, state: TrainState, step: int,
                  workdir: str) -> str:
  """The sample grid of `state` (2-D: scatter and score fields), plus a denoising
  trajectory strip for images (key fold_in(key(seed + 2), step)); returns the grid's path."""
  writer = MetricsWriter(workdir, enabled=jax.process_index() == 0)
  try:
    path = setup.save_snapshot_samples(c, s, state, step, workdir, writer)
    if jax.process_index() == 0 and len(c.data_shape) == 3:
      key = jax.random.fold_in(jax.random.key(s.seed + 2), step)
      figures.write_trajectory(c.sde, setup.ema_score_fn(c, state), key,
                               path.replace("step_", "trajectory_"), sampling=s.sampling,
                               data_shape=c.data_shape, inverse_scaler=c.inverse_scaler)
    return path
  finally:
    writer.close()
