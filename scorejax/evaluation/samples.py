"""`--mode=sample`: samples from the newest checkpoint of a workdir."""

from __future__ import annotations

import jax

from scorejax.report import figures
from scorejax.training import parallel
from scorejax.training import setup as train_lib


def sample_from_workdir(config, workdir: str) -> str:
  """Restores the newest checkpoint and writes a grid of EMA samples; returns its path."""
  parallel.maybe_initialize_distributed()
  c, state, step = train_lib.load_state(config, workdir)
  writer = train_lib.MetricsWriter(workdir, enabled=jax.process_index() == 0)
  try:
    path = train_lib.save_snapshot_samples(config, c, state, step, workdir, writer)
    if jax.process_index() == 0 and len(c.data_shape) == 3:
      score_fn = train_lib.ema_score_fn(c, state, bool(config.training.continuous))
      key = jax.random.fold_in(jax.random.key(int(config.seed) + 2), step)
      figures.write_trajectory(config, c, score_fn, key, path.replace("step_", "trajectory_"))
    return path
  finally:
    writer.close()
