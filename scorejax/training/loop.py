"""The training loop.

`train_and_evaluate(config, workdir)` is the config edge of `--mode=train`: it reads
the config once (`TrainSettings`, `Components`, the data) and calls `train`, which
takes only those. Training runs on every device of every process (one `jax.jit`
over a 'data' mesh), resumes from the newest checkpoint in `workdir` when there is
one, and writes metrics, sample grids and checkpoints there. Rerunning the same
command after a preemption continues where the run stopped, bit-exactly: data
order and random draws depend only on (seed, step).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
from typing import Callable, Iterator

import jax
import numpy as np
import tqdm

from scorejax import data
from scorejax.report.writer import MetricsWriter
from scorejax.training import checkpoint, parallel
from scorejax.training.setup import (Components, SampleSettings, build_components, init_state,
                                     make_snapshot_sampler, save_snapshot_samples, with_scaler)
from scorejax.training.state import TrainState
from scorejax.training.step import make_eval_step, make_train_step

log = logging.getLogger(__name__)
Array = jax.Array


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """The training schedule (score_sde's `training.*` names), read once by `from_config`.

  Steps run from the restored step + 1 to `n_iters`; the base key is key(seed)
  (init, train and eval keys fold in 0, 1, 2). Every `log_freq` steps the metrics
  are written, every `eval_freq` (0: never) the eval loss of one test batch, every
  `snapshot_freq` a kept checkpoint (and, with `snapshot_sampling`, a sample grid
  drawn as `samples` says), every `snapshot_freq_for_preemption` an overwritten one.
  """
  seed: int
  n_iters: int
  batch_size: int
  ema_rate: float
  log_freq: int
  eval_freq: int
  snapshot_freq: int
  snapshot_freq_for_preemption: int
  snapshot_sampling: bool
  samples: SampleSettings

  @classmethod
  def from_config(cls, config) -> "TrainSettings":
    t = config.training
    return cls(seed=int(config.seed), n_iters=int(t.n_iters), batch_size=int(t.batch_size),
               ema_rate=float(config.model.ema_rate), log_freq=int(t.log_freq),
               eval_freq=int(t.eval_freq), snapshot_freq=int(t.snapshot_freq),
               snapshot_freq_for_preemption=int(t.snapshot_freq_for_preemption),
               snapshot_sampling=bool(t.snapshot_sampling),
               samples=SampleSettings.from_config(config))


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
  """Trains `config` in `workdir`; returns the final state. The config is read here only."""
  parallel.maybe_initialize_distributed()
  s = TrainSettings.from_config(config)
  parallel.check_global_batch(s.batch_size, parallel.data_mesh())
  _write_config(config, workdir)
  c = build_components(config)
  eval_batches = functools.partial(data.eval_batches, config, "test") if s.eval_freq > 0 else None
  return train(c, s, workdir, batch_fn=data.make_train_batch_fn(config), eval_batches=eval_batches)


def train(c: Components, s: TrainSettings, workdir: str, *, batch_fn: Callable[[int], np.ndarray],
          eval_batches: Callable[[], Iterator[np.ndarray]] | None = None) -> TrainState:
  """Trains from the newest checkpoint in `workdir` (or from scratch) to `s.n_iters`.

  `batch_fn(step)`: this process's slice of the training batch of `step` (a pure
  function of the step, `data.make_train_batch_fn`); `eval_batches()`: one pass
  over the test split (cycled; needed when `s.eval_freq > 0`). Returns the final state.
  """
  mesh = parallel.data_mesh()
  base_key = jax.random.key(s.seed)
  init_key, train_key, eval_key = (jax.random.fold_in(base_key, i) for i in range(3))
  rep = parallel.replicated(mesh)
  state = jax.jit(lambda k: init_state(c, k), out_shardings=rep)(init_key)

  manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"),
                                    snapshot_freq=s.snapshot_freq)
  restored = checkpoint.restore_latest(manager, checkpoint.abstract_like(state))
  start_step = 0
  if restored is not None:
    state, start_step = restored
    log.info("resumed from the checkpoint at step %d", start_step)

  train_step = jax.jit(with_scaler(make_train_step(c.loss_fn, c.optimizer, s.ema_rate), c.scaler),
                       in_shardings=(rep, parallel.batch_sharded(mesh), rep),
                       out_shardings=(rep, rep), donate_argnums=(0,))
  eval_step = jax.jit(with_scaler(make_eval_step(c.eval_loss_fn), c.scaler),
                      in_shardings=(rep, parallel.batch_sharded(mesh), rep), out_shardings=rep)
  # Several fake CPU devices can deadlock XLA's CPU all-reduce if many steps are in
  # flight on a small machine: wait on every step there.
  sync_every_step = jax.devices()[0].platform == "cpu" and jax.device_count() > 1

  writer = MetricsWriter(workdir, enabled=jax.process_index() == 0)
  batches = data.batch_stream(batch_fn, start_step=start_step)
  evals = _cycle(eval_batches) if s.eval_freq > 0 else None
  preempted = checkpoint.PreemptionFlag()
  pbar = tqdm.tqdm(total=s.n_iters, initial=start_step, disable=jax.process_index() != 0,
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
    if step % s.log_freq == 0 or step == s.n_iters:
      pbar.set_postfix(loss=f"{loss:.4g}", refresh=False)
      writer.scalars(step, {k: float(v) for k, v in metrics.items()}
                     | {"lr": float(c.learning_rate(step - 1))})

  try:
    for step in range(start_step + 1, s.n_iters + 1):
      batch = parallel.global_batch(next(batches), mesh)
      state, metrics = train_step(state, batch, train_key)
      if sync_every_step:
        jax.block_until_ready(metrics)
      if pending is not None:
        report(*pending)
      pending = (step, metrics)
      pbar.update(1)

      if evals is not None and step % s.eval_freq == 0:
        eval_metrics = eval_step(state, parallel.global_batch(next(evals), mesh), eval_key)
        writer.scalars(step, {k: float(v) for k, v in eval_metrics.items()})

      stop = _any_process(preempted.is_set()) if (
          step % s.log_freq == 0 or jax.process_count() == 1) else False
      snapshot = step % s.snapshot_freq == 0
      if snapshot or step % s.snapshot_freq_for_preemption == 0 or step == s.n_iters or stop:
        report(*pending)  # never checkpoint a non-finite state
        pending = None
        checkpoint.save(manager, step, state)
      if snapshot and s.snapshot_sampling:
        snapshot_sampler = snapshot_sampler or make_snapshot_sampler(c, s.samples)
        save_snapshot_samples(c, s.samples, state, step, workdir, writer, snapshot_sampler)
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
