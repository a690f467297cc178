"""`--mode=sample`: samples from the newest checkpoint of a workdir."""

from __future__ import annotations

import jax

from scorejax import parallel
from scorejax import train as train_lib


def sample_from_workdir(config, workdir: str) -> str:
  """Restores the newest checkpoint and writes a grid of EMA samples; returns its path."""
  parallel.maybe_initialize_distributed()
  c, state, step = train_lib.load_state(config, workdir)
  writer = train_lib.MetricsWriter(workdir, enabled=jax.process_index() == 0)
  try:
    return train_lib.save_snapshot_samples(config, c, state, step, workdir, writer)
  finally:
    writer.close()
