"""`--mode=sample`: samples from the newest checkpoint of a workdir."""

from __future__ import annotations

import os

import jax

from scorejax import checkpoint, parallel
from scorejax import train as train_lib


def sample_from_workdir(config, workdir: str) -> str:
  """Restores the newest checkpoint and writes a grid of EMA samples; returns its path."""
  parallel.maybe_initialize_distributed()
  c = train_lib.build_components(config)
  continuous = bool(config.training.continuous)
  mesh = parallel.data_mesh()
  state = jax.jit(lambda k: train_lib.init_state(c, k, continuous),
                  out_shardings=parallel.replicated(mesh))(jax.random.key(0))
  manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"),
                                    snapshot_freq=int(config.training.snapshot_freq))
  restored = checkpoint.restore_latest(manager, checkpoint.abstract_like(state))
  if restored is None:
    raise FileNotFoundError(f"no checkpoint under {workdir}/checkpoints; train first with --mode=train")
  state, step = restored
  writer = train_lib.MetricsWriter(workdir, enabled=jax.process_index() == 0)
  try:
    return train_lib.save_snapshot_samples(config, c, state, step, workdir, writer)
  finally:
    writer.close()
    manager.close()
