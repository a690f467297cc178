"""The training loop.

`train_and_evaluate(config, workdir)` is the config edge of `--mode=train`: it reads
the config once (`TrainSettings`, `Components`, the data) and calls `train`, which
takes only those. Training runs on every device of every process (one `jax.jit`
over a 'data' mesh), resumes from the newest checkpoint in `workdir` when there is
one, and writes metrics, sample grids and checkpoints there. Rerunning the same
command after a preemption continues where the run stopped, bit-exactly: data
order and random draws depend only on (seed, step). On SIGTERM the run saves and
raises `Preempted`; the command line then exits with `PREEMPTED_EXIT_CODE` (75), which
the launch scripts requeue on.

What a run refuses to lose: one run per workdir (`run_lock`), the config the
checkpoints were trained with (`run_config`), checkpoints that are verified before
they are trusted and never saved non-finite or unjudged (`checkpoint`, `guard`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from scorejax import data
from scorejax.config_check import ConfigError
from scorejax.report.writer import MetricsWriter
from scorejax.training import checkpoint, parallel, run_config, run_lock
from scorejax.training.guard import DivergenceGuard, NonFiniteLossError
from scorejax.training.setup import (Components, SampleSettings, build_components, jit_init_state,
                                     make_snapshot_sampler, num_classes, save_snapshot_samples,
                                     scaled_eval_step, scaled_train_step)
from scorejax.training.state import TrainState
from scorejax.training.step import make_multi_step

log = logging.getLogger(__name__)
Array = jax.Array


PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: saved and stopped by a signal; rerun to resume


class Preempted(Exception):
  """Training stopped on SIGTERM after saving the checkpoint of `step`; rerun to resume."""

  def __init__(self, step: int):
    super().__init__(f"stopped by a signal at step {step}; rerun the same command to resume")
    self.step = step


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """The training schedule (score_sde's `training.*` names), read once by `from_config`.

  Steps run from the restored step + 1 to `n_iters`; the base key is key(seed)
  (init, train and eval keys fold in 0, 1, 2). Every `log_freq` steps the metrics
  are written, every `eval_freq` (0: never) the eval loss of one test batch, every
  `snapshot_freq` a kept checkpoint (and, with `snapshot_sampling`, a sample grid
  drawn as `samples` says), every `snapshot_freq_for_preemption` an overwritten one.
  `n_jitted_steps` steps run per dispatch (fewer up to the next checkpoint, eval or the
  end), their metrics read together.
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
  n_jitted_steps: int = 1

  @classmethod
  def from_config(cls, config) -> "TrainSettings":
    t = config.training
    return cls(seed=int(config.seed), n_iters=int(t.n_iters), batch_size=int(t.batch_size),
               ema_rate=float(config.model.ema_rate), log_freq=int(t.log_freq),
               eval_freq=int(t.eval_freq), snapshot_freq=int(t.snapshot_freq),
               snapshot_freq_for_preemption=int(t.snapshot_freq_for_preemption),
               snapshot_sampling=bool(t.snapshot_sampling),
               samples=SampleSettings.from_config(config),
               n_jitted_steps=_positive(t.get("n_jitted_steps", 1), "training.n_jitted_steps"))


def _positive(value, field: str) -> int:
  if int(value) < 1 or int(value) != value:
    raise ConfigError(f"config.{field}={value!r} must be a positive integer")
  return int(value)


def _stack(*arrays: np.ndarray) -> np.ndarray:
  """Host arrays stacked on a new leading axis; one array as a view (no copy per step)."""
  return np.asarray(arrays[0])[None] if len(arrays) == 1 else np.stack(arrays)


def _next_stop(step: int, s: TrainSettings) -> int:
  """The first step after `step` at which the loop must hold the state: a checkpoint, an
  eval or the end (a multi-step dispatch ends there)."""
  ends = [s.n_iters] + [(step // f + 1) * f for f in
                        (s.snapshot_freq, s.snapshot_freq_for_preemption, s.eval_freq) if f > 0]
  return min(ends)


def _make_workdir(workdir: str) -> None:
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise OSError(f"cannot create --workdir={workdir!r} ({e.strerror}); choose a writable "
                  "directory") from e


def _cycle(make_iterator):
  """Endless iteration over a finite iterator, restarted whenever it runs out."""
  while True:
    yield from make_iterator()


def _any_process(flag: bool) -> bool:
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils
  return bool(np.any(multihost_utils.process_allgather(np.array(flag))))


def train_and_evaluate(config, workdir: str, *, allow_config_change: bool = False) -> TrainState:
  """Trains `config` in `workdir`; returns the final state. The config is read here only.

  The workdir is locked for the run (`run_lock`); a resume is checked against the
  run's recorded config before anything is restored (`run_config.check_resume`;
  `allow_config_change` permits changes of the optimizer, seed, batch size, ...), and
  the record is rewritten only after the restore succeeded. Raises `Preempted` after
  saving when stopped by SIGTERM.
  """
  parallel.maybe_initialize_distributed()
  s = TrainSettings.from_config(config)
  parallel.check_global_batch(s.batch_size, parallel.data_mesh())
  _make_workdir(workdir)
  with run_lock.workdir_lock(workdir):
    if checkpoint.saved_steps(os.path.join(workdir, "checkpoints")):
      run_config.check_resume(workdir, config, allow_config_change=allow_config_change)
    c = build_components(config)
    labelled = num_classes(config) > 0  # a label-conditional model trains on (image, label)
    eval_batches = (functools.partial(data.eval_batches, config, "test", with_labels=labelled)
                    if s.eval_freq > 0 else None)
    init_from = config.training.get("init_from", None)
    initialize = (functools.partial(init_from_run, c, init_from) if init_from else None)
    return train(c, s, workdir, batch_fn=data.make_train_batch_fn(config, with_labels=labelled),
                 eval_batches=eval_batches,
                 on_start=lambda step: run_config.record_config(workdir, config, step),
                 initialize=initialize)


def init_from_run(c: Components, source_workdir: str, state: TrainState) -> TrainState:
  """`state` with the parameters it shares with the newest checkpoint of another run.

  `config.training.init_from`: fine-tuning. The source run is rebuilt from its own
  config record (`run_config.CONFIG_NAME`); every parameter of `state` whose path and
  shape the source's EMA parameters also have is taken from them, the others (e.g. the
  class embedding a label-conditional model adds, which starts at zero so that the
  new model begins as the source) keep their initialization. Params and EMA both
  start there; the optimizer starts afresh; the step stays 0.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  from scorejax.training.setup import load_state  # pylint: disable=g-import-not-at-top

  record = run_config.read_record(source_workdir)
  if record is None or not checkpoint.saved_steps(os.path.join(source_workdir, "checkpoints")):
    raise ConfigError(f"config.training.init_from={source_workdir!r} is not a trained run (no "
                      f"{run_config.CONFIG_NAME} or no checkpoints there); name the --workdir of "
                      "a finished --mode=train run, or set it to None")
  source_config = ml_collections.ConfigDict(record)
  source_c = build_components(source_config)
  source, step = load_state(source_c, source_workdir, seed=int(source_config.seed),
                            snapshot_freq=int(source_config.training.snapshot_freq))
  ours = traverse_util.flatten_dict(jax.device_get(state.params))
  theirs = traverse_util.flatten_dict(jax.device_get(source.ema_params))
  taken = {k: (theirs[k] if k in theirs and np.shape(theirs[k]) == np.shape(v) else v)
           for k, v in ours.items()}
  kept = sorted("/".join(k) for k in ours if taken[k] is ours[k])
  if len(kept) == len(ours):
    raise ConfigError(f"config.training.init_from={source_workdir!r}: none of its parameters "
                      "fits this model; the source must have the same network")
  log.info("initialized from %s (step %d); parameters kept from the initialization: %s",
           source_workdir, step, kept)
  params = traverse_util.unflatten_dict(taken)
  return jax.jit(lambda p: TrainState.create(p, c.optimizer, model_state=state.model_state),
                 out_shardings=parallel.replicated(parallel.data_mesh()))(params)


def _copy_state(state: TrainState) -> TrainState:
  return jax.tree.map(jnp.copy, state)


def train(c: Components, s: TrainSettings, workdir: str, *, batch_fn: Callable[[int], np.ndarray],
          eval_batches: Callable[[], Iterator[np.ndarray]] | None = None,
          on_start: Callable[[int], None] | None = None,
          initialize: Callable[[TrainState], TrainState] | None = None) -> TrainState:
  """Trains from the newest checkpoint in `workdir` (or from scratch) to `s.n_iters`.

  `batch_fn(step)`: this process's slice of the training batch of `step` (a pure
  function of the step, `data.make_train_batch_fn`); `eval_batches()`: one pass
  over the test split (cycled; needed when `s.eval_freq > 0`); `on_start(step)`:
  called once the start step is known (after a successful restore);
  `initialize(state)`: the initial state of a new run (no checkpoint) from the freshly
  initialized one (`init_from_run`: fine-tuning). Returns the final state.

  Nothing unverified is saved: the state after step s is checkpointed only once the
  loss and gradient norm of step s + 1, which are computed on it, pass the
  `DivergenceGuard` (after the last step, and after a signal, one more step is
  computed for that and discarded), and `checkpoint.save` refuses non-finite arrays.
  A diverged run raises `NonFiniteLossError` naming the step and the newest
  (good) checkpoint; SIGTERM saves and raises `Preempted`.
  """
  mesh = parallel.data_mesh()
  base_key = jax.random.key(s.seed)
  init_key, train_key, eval_key = (jax.random.fold_in(base_key, i) for i in range(3))
  rep = parallel.replicated(mesh)
  state = jit_init_state(c, rep)(init_key)

  manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"),
                                    snapshot_freq=s.snapshot_freq)
  try:
    restored = checkpoint.restore_latest(manager, checkpoint.abstract_like(state))
  except BaseException:
    manager.close()
    raise
  start_step = 0
  if restored is not None:
    state, start_step = restored
    log.info("resumed from the checkpoint at step %d", start_step)
  elif initialize is not None:
    state = initialize(state)
  if start_step >= s.n_iters:
    manager.close()
    if start_step > s.n_iters:
      raise ConfigError(
          f"config.training.n_iters={s.n_iters} is below step {start_step}, where the run in "
          f"{workdir} already is; raise --config.training.n_iters to train on (--mode=eval and "
          "--mode=sample read the checkpoints of any step)")
    log.warning("the run in %s is already at step %d = config.training.n_iters: nothing to "
                "train; raise --config.training.n_iters to continue", workdir, start_step)
    return state
  if on_start is not None:
    on_start(start_step)

  on_cpu = jax.devices()[0].platform == "cpu"
  # On accelerators the step donates the state (updated in place: one copy of it in device
  # memory). On CPU it does not: with the state's buffers aliased to the outputs, XLA:CPU
  # lays out the step's temporaries differently (NCSN++ at batch 8: 1090 MB instead of
  # 394 MB) and the same reduction kernels run up to 10x slower, the whole step ~30%
  # slower (2-core AMD EPYC: NCSN++ 3.9 s against 2.7-2.95 s, DDPM++ 3.4-3.55 s against
  # 2.45-2.75 s; docs/training.md); host memory holds the extra copy easily.
  donate = not on_cpu
  train_steps = jax.jit(
      make_multi_step(scaled_train_step(c, s.ema_rate)),
      in_shardings=(rep, parallel.stacked_batch_sharded(mesh), None, rep),
      out_shardings=(rep, rep), donate_argnums=(0,) if donate else ())
  eval_step = jax.jit(scaled_eval_step(c),
                      in_shardings=(rep, parallel.batch_sharded(mesh), rep), out_shardings=rep)
  # A donated state is consumed by the next dispatch: what is saved is a copy of it.
  copy_state = jax.jit(_copy_state, out_shardings=rep) if donate else (lambda state: state)
  learning_rate = jax.jit(c.learning_rate)  # one small program, not one per operation of the schedule
  # Several fake CPU devices can deadlock XLA's CPU all-reduce if many steps are in
  # flight on a small machine: wait on every step there.
  sync_every_step = on_cpu and jax.device_count() > 1

  writer = MetricsWriter(workdir, enabled=jax.process_index() == 0, resume_step=start_step)
  batches = data.batch_stream(batch_fn, start_step=start_step)
  evals = _cycle(eval_batches) if s.eval_freq > 0 else None
  preempted = checkpoint.PreemptionFlag()
  pbar = tqdm.tqdm(total=s.n_iters, initial=start_step, disable=jax.process_index() != 0,
                   dynamic_ncols=True, desc="train", mininterval=2.0)
  guard = DivergenceGuard()
  # (first step, k, metrics, log?) of the previous dispatch, read after the next is dispatched
  pending = None
  to_save = None  # (step, copy of the state after it, snapshot?): saved once the next step judged it
  final_state = None
  snapshot_sampler = None  # built (and compiled) at the first snapshot

  def judge(first: int, k: int, metrics: dict, log_it: bool) -> tuple[int, str] | None:
    """Guards (and logs) steps first..first + k - 1; the first that fails, with why."""
    metrics = jax.device_get(metrics)
    for i in range(k):
      step = first + i
      loss, grad_norm = float(metrics["loss"][i]), float(metrics["grad_norm"][i])
      problem = guard.problem(loss, grad_norm)
      if problem is not None:
        return step, problem
      if log_it and (step % s.log_freq == 0 or step == s.n_iters):
        pbar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        writer.scalars(step, {name: float(v[i]) for name, v in metrics.items()}
                       | {"lr": float(learning_rate(step - 1))})
    return None

  def diverged(step: int, problem: str) -> NonFiniteLossError:
    latest = manager.latest_step()
    return NonFiniteLossError(
        f"training diverged at step {step}: {problem}, computed on the parameters after step "
        f"{step - 1}, which were not saved. "
        + (f"The newest checkpoint (step {latest}) passed this check; rerunning resumes from it"
           if latest is not None else "No checkpoint has been saved")
        + ". Lower config.optim.lr, check config.optim.grad_clip, or inspect the data of "
        f"step {step}")

  n_stacked = s.n_jitted_steps
  if n_stacked > 1 and on_cpu:
    log.warning("config.training.n_jitted_steps=%d runs each chunk's steps in a loop, where "
                "XLA:CPU computes the gradient convolutions without its Eigen kernels (~18x "
                "slower per step on configs/digits.py; docs/training.md, 'Steps per dispatch'); "
                "on CPU set --config.training.n_jitted_steps=1", n_stacked)
  stop = False
  step = start_step  # the last step dispatched
  try:
    while True:
      judge_only = step >= s.n_iters or stop  # computed to judge the state to save, then dropped
      k = 1 if judge_only else min(n_stacked, _next_stop(step, s) - step)
      local = [next(batches) for _ in range(k)]
      local += local[-1:] * (n_stacked - k)  # padding, not trained on
      stacked = parallel.global_stacked_batches(jax.tree.map(_stack, *local), mesh)
      state, metrics = train_steps(state, stacked, np.int32(k), train_key)
      if sync_every_step:
        jax.block_until_ready(metrics)
      if pending is not None:
        failed = judge(*pending)
        if failed is not None:
          raise diverged(*failed)
      pending = (step + 1, k, metrics, not judge_only)
      step += k
      if not judge_only:
        pbar.update(k)

      if to_save is not None:  # this dispatch's first loss is computed on the state to save
        failed = judge(*pending)
        pending = None
        saved_step, saved_state, snapshot = to_save
        to_save = None
        if failed is not None and failed[0] == saved_step + 1:
          raise diverged(*failed)
        checkpoint.save(manager, saved_step, saved_state)
        if failed is not None:  # a later step of the dispatch failed; the saved state passed
          raise diverged(*failed)
        if saved_step == s.n_iters:
          final_state = saved_state
        if snapshot and s.snapshot_sampling:
          snapshot_sampler = snapshot_sampler or make_snapshot_sampler(c, s.samples)
          save_snapshot_samples(c, s.samples, saved_state, saved_step, workdir, writer,
                                snapshot_sampler)
      if judge_only:
        break

      if evals is not None and step % s.eval_freq == 0:
        eval_metrics = eval_step(state, parallel.global_batch(next(evals), mesh), eval_key)
        writer.scalars(step, {name: float(v) for name, v in eval_metrics.items()})

      # Processes agree on the chunks, so all of them ask at the same dispatches.
      crossed_log = step // s.log_freq > (step - k) // s.log_freq
      stop = _any_process(preempted.is_set()) if (
          crossed_log or jax.process_count() == 1) else False
      snapshot = step % s.snapshot_freq == 0
      if snapshot or step % s.snapshot_freq_for_preemption == 0 or step == s.n_iters or stop:
        to_save = (step, copy_state(state), snapshot)
  finally:
    pbar.close()
    writer.close()
    preempted.restore_handlers()
    manager.close()
  if stop and final_state is None:
    log.warning("stopped by a signal at step %d; rerun the same command to resume", step - 1)
    raise Preempted(step - 1)
  return final_state
