"""Checkpoints with orbax: periodic snapshots kept, preemption checkpoints rotated.

One `orbax.checkpoint.CheckpointManager` under `workdir/checkpoints`, keyed by the
real training step:

* every `snapshot_freq` steps a snapshot that is never deleted (`keep_period`),
* every `snapshot_freq_for_preemption` steps (and on SIGTERM, and at the end) a
  checkpoint of which only the latest is kept (`max_to_keep=1`).

The saved `TrainState` is all a run needs to resume bit-exactly: the data order
and every random draw are pure functions of (seed, step).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging as absl_logging

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
  """No checkpoint in the directory could be restored."""


def make_manager(directory: str, *, snapshot_freq: int,
                 read_only: bool = False) -> ocp.CheckpointManager:
  """A manager keeping the latest checkpoint and every multiple of `snapshot_freq`.

  With `read_only` (sampling, evaluation, bits/dim) the manager only lists and
  restores: the directory may be read-only or absent (then it lists no steps), and
  nothing is created, deleted or written in it.
  """
  directory = os.path.abspath(directory)
  if read_only:
    options = ocp.CheckpointManagerOptions(  # no retention policy: it never deletes
        save_interval_steps=0, max_to_keep=None, keep_period=None, create=False, read_only=True,
        enable_async_checkpointing=False)
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)  # orbax warns "directory is read only"
    try:
      return ocp.CheckpointManager(directory, options=options)
    finally:
      absl_logging.set_verbosity(verbosity)
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as e:
    raise OSError(f"cannot create the checkpoint directory {directory!r} ({e.strerror}); "
                  "choose a writable --workdir") from e
  if not os.access(directory, os.W_OK):
    raise OSError(f"the checkpoint directory {directory!r} is not writable; choose a writable --workdir")
  options = ocp.CheckpointManagerOptions(
      max_to_keep=1, keep_period=max(int(snapshot_freq), 1), create=True,
      enable_async_checkpointing=False)
  return ocp.CheckpointManager(directory, options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
  """Saves `state` at `step` (synchronously; a no-op if that step is already saved)."""
  if step in manager.all_steps():
    return
  try:
    manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
    manager.wait_until_finished()
  except OSError as e:  # full disk, quota, read-only file system
    raise OSError(e.errno, f"could not write the checkpoint for step {step} under "
                  f"{manager.directory} ({e.strerror or e}); free space or choose a writable "
                  f"--workdir. Earlier checkpoints are intact: rerunning resumes from step "
                  f"{manager.latest_step()}") from e


def restore_step(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> Any:
  """Restores the checkpoint saved at `step` (FileNotFoundError listing the steps if absent)."""
  if step not in manager.all_steps():
    raise FileNotFoundError(f"no checkpoint for step {step} in {manager.directory}; "
                            f"available: {sorted(manager.all_steps())}")
  return manager.restore(int(step), args=ocp.args.StandardRestore(abstract_state))


def restore_latest(manager: ocp.CheckpointManager, abstract_state: Any) -> tuple[Any, int] | None:
  """Restores the newest readable checkpoint; falls back to older ones if it is corrupt.

  `abstract_state` gives structure, shapes, dtypes and shardings (e.g. from
  `jax.eval_shape` plus the shardings of a freshly built state). Returns
  (state, step), or None when the directory holds no checkpoint.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  if not steps:
    return None
  errors = []
  for step in steps:
    try:
      state = manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
    except Exception as e:  # noqa: BLE001  (any failure to read means: try the previous one)
      errors.append(f"step {step}: {type(e).__name__}: {e}")
      log.warning("checkpoint at step %d could not be restored (%s: %s); trying the previous one",
                  step, type(e).__name__, e)
      continue
    if errors:
      log.warning("resumed from step %d after skipping unreadable checkpoints: %s", step,
                  "; ".join(errors))
      _set_aside([s for s in steps if s > step], manager)
    return state, step
  raise CheckpointError(f"no checkpoint in {manager.directory} could be restored: " + "; ".join(errors))


def _set_aside(steps: list[int], manager: ocp.CheckpointManager) -> None:
  """Renames unreadable checkpoints to `unreadable_step_N` (kept for inspection, not reused)."""
  if jax.process_index() == 0:
    for step in steps:
      src = os.path.join(str(manager.directory), str(step))
      if os.path.isdir(src):
        dst = os.path.join(str(manager.directory), f"unreadable_step_{step}")
        while os.path.exists(dst):
          dst += "_"
        os.replace(src, dst)
        log.warning("moved the unreadable checkpoint %s to %s", src, dst)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("scorejax_checkpoint_set_aside")
  manager.reload()


def abstract_like(state: Any) -> Any:
  """ShapeDtypeStructs (with shardings) describing `state`, for `restore_latest`."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


class PreemptionFlag:
  """Set by SIGTERM (or SIGINT); the training loop saves and stops when it is set.

  On several hosts `jax.experimental.multihost_utils.reached_preemption_sync_point`
  agrees on a step; here each process checks the flag, and since all receive the
  signal from the scheduler, all stop at the same step boundary after a
  cross-process agreement in the loop.
  """

  def __init__(self, signals=(signal.SIGTERM,)):
    self._event = threading.Event()
    self._previous = {}
    if threading.current_thread() is threading.main_thread():
      for sig in signals:
        self._previous[sig] = signal.signal(sig, self._handler)

  def _handler(self, signum, frame):
    log.warning("received signal %d: saving a checkpoint and stopping", signum)
    self._event.set()

  def is_set(self) -> bool:
    return self._event.is_set()

  def restore_handlers(self) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
