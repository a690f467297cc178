"""The training loop: build everything from the config, then train.

`train_and_evaluate(config, workdir)` trains on every device of every process
(one `jax.jit` over a 'data' mesh), resumes from the newest checkpoint in
`workdir` when there is one, and writes metrics, sample grids and checkpoints
there. Rerunning the same command after a preemption continues where the run
stopped, bit-exactly: data order and random draws depend only on (seed, step).
"""

from __future__ import annotations

import logging
import math
import os

import jax
import numpy as np
import tqdm

from scorejax import data
from scorejax.report.writer import MetricsWriter
from scorejax.training import checkpoint, optim, parallel
from scorejax.training.setup import (build_components, init_state, make_snapshot_sampler,
                                     save_snapshot_samples, with_scaler)
from scorejax.training.state import TrainState
from scorejax.training.step import make_eval_step, make_train_step

log = logging.getLogger(__name__)
Array = jax.Array


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or infinite."""


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
