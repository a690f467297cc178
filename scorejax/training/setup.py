"""What a run is built from, shared by training, sampling, evaluation and bits/dim.

`build_components(config)` is where the config becomes objects (SDE, model,
optimizer, losses, data shape and scalers); `init_state` / `load_state` give the
parameters, `ema_score_fn` the score function of the EMA parameters, and
`save_snapshot_samples` the sample grid (or 2-D figures) of a state.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from scorejax import data, losses, models
from scorejax import sde as sde_lib
from scorejax.report import figures
from scorejax.report.writer import MetricsWriter
from scorejax.sampling import get_sampling_fn
from scorejax.training import checkpoint, optim, parallel
from scorejax.training.state import TrainState

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Components:
  """What a run is built from; everything else takes these as arguments."""
  sde: sde_lib.SDE
  model: Any
  optimizer: Any
  loss_fn: Callable
  eval_loss_fn: Callable
  data_shape: tuple[int, ...]
  scaler: Callable[[Array], Array]
  inverse_scaler: Callable[[Array], Array]


def build_components(config) -> Components:
  """SDE, model, optimizer and losses from `config` (the only place it is read)."""
  sde = sde_lib.sde_from_config(config)
  model = models.get_model(config)
  optimizer = optim.optimizer_from_config(config.optim)
  t = config.training
  common = dict(reduce_mean=bool(t.reduce_mean), continuous=bool(t.continuous),
                likelihood_weighting=bool(t.likelihood_weighting))
  loss_fn = losses.get_sde_loss_fn(sde, model, train=True, **common)
  eval_loss_fn = losses.get_sde_loss_fn(sde, model, train=False, **common)
  _, data_shape = data.get_dataset_info(config)
  return Components(sde=sde, model=model, optimizer=optimizer, loss_fn=loss_fn,
                    eval_loss_fn=eval_loss_fn, data_shape=tuple(data_shape),
                    scaler=data.get_data_scaler(config),
                    inverse_scaler=data.get_data_inverse_scaler(config))


def init_state(c: Components, key: Array, continuous: bool) -> TrainState:
  """Initial parameters (from `key`), EMA copy and optimizer state."""
  x = jnp.zeros((1,) + c.data_shape, jnp.float32)
  labels, _ = models.labels_and_std(c.sde, jnp.full((1,), 0.5), continuous)
  variables = c.model.init({"params": key, "dropout": key}, x, labels, train=False)
  variables = dict(variables)
  params = variables.pop("params")
  return TrainState.create(params, c.optimizer, model_state=variables)


def with_scaler(step_fn: Callable, scaler: Callable[[Array], Array]) -> Callable:
  """Applies the data scaler ([0,1] -> model range) to the batch inside the jitted step."""
  return lambda state, batch, key: step_fn(state, scaler(batch), key)


def ema_score_fn(c: Components, state: TrainState, continuous: bool):
  variables = {"params": state.ema_params, **state.model_state}
  return models.get_score_fn(c.sde, c.model, variables, continuous=continuous)


def make_snapshot_sampler(config, c: Components) -> Callable[[TrainState, Array], Array]:
  """`sample(state, key) -> images in [0, 1]` with the EMA parameters, jitted once per run."""
  n = int(config.training.get("snapshot_sample_count", 64))
  sample = get_sampling_fn(config, c.sde, (n,) + c.data_shape)
  continuous = bool(config.training.continuous)
  return jax.jit(lambda st, k: c.inverse_scaler(sample(k, ema_score_fn(c, st, continuous))[0]))


def save_snapshot_samples(config, c: Components, state: TrainState, step: int, workdir: str,
                          writer: MetricsWriter, sampler=None) -> str:
  """Samples with the EMA parameters and writes a PNG (grid, or scatter for 2-D data).

  `sampler` is `make_snapshot_sampler(config, c)`, built here if not given.
  """
  sampler = sampler or make_snapshot_sampler(config, c)
  key = jax.random.fold_in(jax.random.key(int(config.seed) + 1), step)
  x = np.asarray(sampler(state, key))
  n = x.shape[0]
  path = os.path.join(workdir, "samples", f"step_{step:08d}.png")
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if len(c.data_shape) == 3:
      writer.image_grid(step, "samples", x, path)
    else:
      figures.write_2d_figures(config, c, ema_score_fn(c, state, bool(config.training.continuous)),
                               x.reshape(n, -1)[:, :2], step, path)
    np.save(path[:-4] + ".npy", x)
  return path


def load_state(config, workdir: str, step: int | None = None, *, untrained: bool = False
               ) -> tuple[Components, TrainState, int]:
  """Components and the state saved in `workdir` at `step` (default: the newest readable).

  With `untrained`, the freshly initialized state (step 0) instead — a baseline for
  evaluations.
  """
  c = build_components(config)
  continuous = bool(config.training.continuous)
  mesh = parallel.data_mesh()
  init_key = jax.random.fold_in(jax.random.key(int(config.seed)), 0)
  state = jax.jit(lambda k: init_state(c, k, continuous),
                  out_shardings=parallel.replicated(mesh))(init_key)
  if untrained:
    return c, state, 0
  manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"),
                                    snapshot_freq=int(config.training.snapshot_freq))
  try:
    if step is None:
      restored = checkpoint.restore_latest(manager, checkpoint.abstract_like(state))
      if restored is None:
        raise FileNotFoundError(f"no checkpoint under {workdir}/checkpoints; train first with --mode=train")
      state, step = restored
    else:
      state = checkpoint.restore_step(manager, step, checkpoint.abstract_like(state))
  finally:
    manager.close()
  return c, state, int(step)


