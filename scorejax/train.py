"""Training: build everything from the config, then the readable loop.

`train_and_evaluate(config, workdir)` trains on every device of every process
(one `jax.jit` over a 'data' mesh), resumes from the newest checkpoint in
`workdir` when there is one, and writes metrics, sample grids and checkpoints
there. Rerunning the same command after a preemption continues where the run
stopped, bit-exactly: data order and random draws depend only on (seed, step).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from scorejax import checkpoint, data, figures, losses, models, optim, parallel
from scorejax import sde as sde_lib
from scorejax.metrics_writer import MetricsWriter
from scorejax.sampling import get_sampling_fn
from scorejax.train_state import TrainState
from scorejax.train_step import make_eval_step, make_train_step

log = logging.getLogger(__name__)
Array = jax.Array


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or infinite."""


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


def _write_config(config, workdir: str) -> None:
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise OSError(f"cannot create --workdir={workdir!r} ({e.strerror}); choose a writable "
                  "directory") from e
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))


def _cycle(make_iterator):
  """Endless iteration over a finite iterator, restarted whenever it runs out."""
  while True:
    yield from make_iterator()


def _any_process(flag: bool) -> bool:
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils
  return bool(np.any(multihost_utils.process_allgather(np.array(flag))))


def train_and_evaluate(config, workdir: str) -> TrainState:
  """Trains `config` in `workdir`; returns the final state."""
  parallel.maybe_initialize_distributed()
  t = config.training
  mesh = parallel.data_mesh()
  parallel.check_global_batch(int(t.batch_size), mesh)
  _write_config(config, workdir)
  c = build_components(config)
  continuous = bool(t.continuous)

  base_key = jax.random.key(int(config.seed))
  init_key, train_key, eval_key = (jax.random.fold_in(base_key, i) for i in range(3))
  rep = parallel.replicated(mesh)
  state = jax.jit(lambda k: init_state(c, k, continuous), out_shardings=rep)(init_key)

  manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"),
                                    snapshot_freq=int(t.snapshot_freq))
  restored = checkpoint.restore_latest(manager, checkpoint.abstract_like(state))
  start_step = 0
  if restored is not None:
    state, start_step = restored
    log.info("resumed from the checkpoint at step %d", start_step)
  n_iters = int(t.n_iters)

  train_step = jax.jit(with_scaler(make_train_step(c.loss_fn, c.optimizer, float(config.model.ema_rate)),
                                   c.scaler),
                       in_shardings=(rep, parallel.batch_sharded(mesh), rep),
                       out_shardings=(rep, rep), donate_argnums=(0,))
  eval_step = jax.jit(with_scaler(make_eval_step(c.eval_loss_fn), c.scaler),
                      in_shardings=(rep, parallel.batch_sharded(mesh), rep), out_shardings=rep)
  # Several fake CPU devices can deadlock XLA's CPU all-reduce if many steps are in
  # flight on a small machine: wait on every step there.
  sync_every_step = jax.devices()[0].platform == "cpu" and jax.device_count() > 1

  writer = MetricsWriter(workdir, enabled=jax.process_index() == 0)
  batches = data.train_batches(config, start_step=start_step)
  eval_batches = _cycle(lambda: data.eval_batches(config, split="test")) if int(t.eval_freq) > 0 else None
  preempted = checkpoint.PreemptionFlag()
  pbar = tqdm.tqdm(total=n_iters, initial=start_step, disable=jax.process_index() != 0,
                   dynamic_ncols=True, desc="train", mininterval=2.0)
  pending = None  # (step, metrics) of the previous step, read after the next is dispatched
  snapshot_sampler = None  # built (and compiled) at the first snapshot

  def report(step: int, metrics: dict) -> None:
    loss = float(metrics["loss"])
    if not math.isfinite(loss):
      raise NonFiniteLossError(
          f"the training loss became {loss} at step {step}; the last checkpoint "
          f"({manager.latest_step()}) is unaffected. Lower config.optim.lr, check "
          "config.optim.grad_clip, or inspect the data at that step")
    if step % int(t.log_freq) == 0 or step == n_iters:
      pbar.set_postfix(loss=f"{loss:.4g}", refresh=False)
      writer.scalars(step, {k: float(v) for k, v in metrics.items()}
                     | {"lr": float(optim.learning_rate_schedule(float(config.optim.lr),
                                                                 int(config.optim.warmup))(step - 1))})

  try:
    for step in range(start_step + 1, n_iters + 1):
      batch = parallel.global_batch(next(batches), mesh)
      state, metrics = train_step(state, batch, train_key)
      if sync_every_step:
        jax.block_until_ready(metrics)
      if pending is not None:
        report(*pending)
      pending = (step, metrics)
      pbar.update(1)

      if eval_batches is not None and step % int(t.eval_freq) == 0:
        eval_metrics = eval_step(state, parallel.global_batch(next(eval_batches), mesh), eval_key)
        writer.scalars(step, {k: float(v) for k, v in eval_metrics.items()})

      stop = _any_process(preempted.is_set()) if (
          step % int(t.log_freq) == 0 or jax.process_count() == 1) else False
      snapshot = step % int(t.snapshot_freq) == 0
      if snapshot or step % int(t.snapshot_freq_for_preemption) == 0 or step == n_iters or stop:
        report(*pending)  # never checkpoint a non-finite state
        pending = None
        checkpoint.save(manager, step, state)
      if snapshot and bool(t.snapshot_sampling):
        snapshot_sampler = snapshot_sampler or make_snapshot_sampler(config, c)
        save_snapshot_samples(config, c, state, step, workdir, writer, snapshot_sampler)
      if stop:
        log.warning("stopped by a signal at step %d; rerun the same command to resume", step)
        break
    if pending is not None:
      report(*pending)
  finally:
    pbar.close()
    writer.close()
    preempted.restore_handlers()
    manager.close()
  return state
