"""Checkpoints with orbax: periodic snapshots kept, preemption checkpoints rotated.

One `orbax.checkpoint.CheckpointManager` under `workdir/checkpoints`, keyed by the
real training step:

* every `snapshot_freq` steps a snapshot that is never deleted (`keep_period`),
* every `snapshot_freq_for_preemption` steps (and on SIGTERM, and at the end) a
  checkpoint of which only the latest is kept (`max_to_keep=1`).

The saved `TrainState` is all a run needs to resume bit-exactly: the data order
and every random draw are pure functions of (seed, step).

A checkpoint is verified before it is trusted. `save` refuses a state holding a
non-finite number and stores, beside the arrays (item `state`), a CRC-32 of every
array's bytes (item `checksums`); a restore recomputes them and checks every array
is finite. A checkpoint that cannot be read or fails either check is set aside as
`unreadable_step_N` (kept for inspection) and the previous one is used.
Checkpoints written before checksums existed (a single `default` item) are still
read, checked for finiteness only.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import zlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging as absl_logging

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
  """No checkpoint in the directory could be restored."""


class CorruptCheckpointError(ValueError):
  """A checkpoint was read but its arrays are non-finite or differ from their checksums."""


class CheckpointWriteError(OSError):
  """A checkpoint could not be written (full disk, quota, read-only file system)."""


class NonFiniteStateError(FloatingPointError):
  """`save` was asked to write a state holding NaN or infinity."""


STATE_ITEM, CHECKSUM_ITEM, LEGACY_ITEM = "state", "checksums", "default"


def _path_name(path) -> str:
  """'params/Dense_0/kernel' for a tree path, whether the nodes are dataclasses or dicts."""
  return "/".join(str(getattr(k, "name", getattr(k, "key", getattr(k, "idx", k)))) for k in path)


def _host_leaves(state: Any) -> list[tuple[str, np.ndarray]]:
  """(path, host copy) of every array leaf of a replicated state (this process's copy)."""
  out = []
  for path, x in jax.tree_util.tree_flatten_with_path(state)[0]:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      x = x.addressable_data(0)  # replicated: every process holds all of it
    out.append((_path_name(path), np.asarray(x)))
  return out


def fingerprint(state: Any) -> tuple[dict[str, str], list[str]]:
  """(CRC-32 of each array's bytes by tree path, paths of arrays holding NaN or inf)."""
  sums, nonfinite = {}, []
  for path, x in _host_leaves(state):
    sums[path] = f"{zlib.crc32(np.ascontiguousarray(x).tobytes()):08x}"
    if np.issubdtype(x.dtype, np.inexact) and not np.all(np.isfinite(x)):
      nonfinite.append(path)
  return sums, nonfinite


def _verify(state: Any, expected: dict[str, str] | None, step: int) -> None:
  """CorruptCheckpointError unless every array is finite and matches its stored checksum."""
  sums, nonfinite = fingerprint(state)
  if nonfinite:
    raise CorruptCheckpointError(f"checkpoint {step} holds NaN or infinity in {nonfinite[:5]}"
                                 + (f" and {len(nonfinite) - 5} more" if len(nonfinite) > 5 else ""))
  if expected is not None:
    bad = sorted(p for p in sums if expected.get(p) != sums[p])
    if bad or set(expected) != set(sums):
      raise CorruptCheckpointError(
          f"checkpoint {step} does not match the checksums written with it (arrays "
          f"{(bad or sorted(set(expected) ^ set(sums)))[:5]} differ): its files were altered "
          "after saving")


def _disk_error(e: BaseException) -> OSError | None:
  """The OSError behind a failed write (orbax wraps it in other exceptions), if any."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError):
      return e
    if "No space left on device" in str(e) or "Disk quota exceeded" in str(e):
      return OSError(errno.ENOSPC, str(e).strip().splitlines()[-1][:300])
    e = e.__cause__ or e.__context__
  return None


def saved_steps(directory: str) -> list[int]:
  """Steps of the finished checkpoints in `directory` (without opening them; [] if none)."""
  if not os.path.isdir(directory):
    return []
  return sorted(int(n) for n in os.listdir(directory)
                if n.isdigit() and os.path.isdir(os.path.join(directory, n)))


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
  """Saves `state` at `step` with its checksums (synchronously; a no-op if already saved).

  NonFiniteStateError (and nothing written) if any array of `state` holds NaN or
  infinity; CheckpointWriteError (an OSError) naming the directory and the fix if
  the disk is full or read-only.
  """
  if step in manager.all_steps():
    return
  sums, nonfinite = fingerprint(state)
  if nonfinite:
    raise NonFiniteStateError(
        f"refusing to save step {step}: {nonfinite[:5]} hold NaN or infinity. Earlier "
        f"checkpoints are intact (newest: {manager.latest_step()})")
  try:
    manager.save(int(step), args=ocp.args.Composite(
        **{STATE_ITEM: ocp.args.StandardSave(state), CHECKSUM_ITEM: ocp.args.JsonSave(sums)}),
        force=True)
    manager.wait_until_finished()
  except Exception as e:  # noqa: BLE001  (full disk, quota, read-only file system)
    disk = _disk_error(e)
    if disk is None:
      raise
    raise CheckpointWriteError(disk.errno, f"could not write the checkpoint for step {step} under "
                  f"{manager.directory} ({disk.strerror or disk}); free space or choose a "
                  f"writable --workdir. Earlier checkpoints are intact: rerunning resumes from "
                  f"step {manager.latest_step()}") from None


def _restore_verified(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> Any:
  """Reads checkpoint `step` and verifies it (CorruptCheckpointError if it fails)."""
  step_dir = os.path.join(str(manager.directory), str(step))
  if os.path.isdir(os.path.join(step_dir, LEGACY_ITEM)):  # written before checksums existed
    state = ocp.StandardCheckpointer().restore(os.path.join(step_dir, LEGACY_ITEM), abstract_state)
    expected = None
  else:
    restored = manager.restore(int(step), args=ocp.args.Composite(
        **{STATE_ITEM: ocp.args.StandardRestore(abstract_state),
           CHECKSUM_ITEM: ocp.args.JsonRestore()}))
    state, expected = restored[STATE_ITEM], dict(restored[CHECKSUM_ITEM])
  _verify(state, expected, step)
  return state


def restore_step(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> Any:
  """Restores and verifies the checkpoint saved at `step` (FileNotFoundError listing the
  steps if absent, CorruptCheckpointError if it fails verification)."""
  if step not in manager.all_steps():
    raise FileNotFoundError(f"no checkpoint for step {step} in {manager.directory}; "
                            f"available: {sorted(manager.all_steps())}")
  return _restore_verified(manager, step, abstract_state)


def restore_latest(manager: ocp.CheckpointManager, abstract_state: Any, *,
                   set_aside: bool = True) -> tuple[Any, int] | None:
  """Restores the newest checkpoint that reads and verifies; falls back to older ones.

  `abstract_state` gives structure, shapes, dtypes and shardings (e.g. from
  `jax.eval_shape` plus the shardings of a freshly built state). Returns
  (state, step), or None when the directory holds no checkpoint. Checkpoints that
  fail are moved aside (`unreadable_step_N`) unless `set_aside` is False (readers).
  """
  steps = sorted(manager.all_steps(), reverse=True)
  if not steps:
    return None
  errors = []
  for step in steps:
    try:
      state = _restore_verified(manager, step, abstract_state)
    except Exception as e:  # noqa: BLE001  (any failure to read means: try the previous one)
      errors.append(f"step {step}: {type(e).__name__}: {e}")
      log.warning("checkpoint at step %d could not be restored (%s: %s); trying the previous one",
                  step, type(e).__name__, e)
      continue
    if errors:
      log.warning("resumed from step %d after skipping unreadable checkpoints: %s", step,
                  "; ".join(errors))
      if set_aside:  # readers (sampling, evaluation) skip them and leave them in place
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
        try:
          os.replace(src, dst)
        except OSError as e:  # a read-only checkpoint directory (sampling, evaluation)
          log.warning("could not move the unreadable checkpoint %s aside (%s); it is skipped",
                      src, e.strerror or e)
          continue
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
