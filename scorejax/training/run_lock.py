"""One training run per workdir: an exclusive lock held for the run's life.

`workdir_lock(workdir)` takes an advisory `flock` on `workdir/run.lock` and writes
the holder (pid, host, start time, command) into it. The kernel releases the lock
when the holding process exits for any reason (kill -9 included), so a lock left
by a dead run is never in the way. A second run on the same workdir fails at once
with `WorkdirInUseError` naming the holder. On file systems without `flock`, the
holder record itself is the lock: a record of a live process on this host (or of
any process on another host) refuses the run; that of a dead local one is taken over.

On several hosts only process 0 takes the lock (the others share its run).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from typing import Iterator

import jax

log = logging.getLogger(__name__)

LOCK_NAME = "run.lock"


class WorkdirInUseError(RuntimeError):
  """Another training run holds the workdir."""


def _holder_record() -> dict:
  return {"pid": os.getpid(), "host": socket.gethostname(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": " ".join(sys.argv)}


def _read_holder(path: str) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def _describe(holder: dict) -> str:
  if not holder:
    return "a run whose record could not be read"
  return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: "
          f"{holder.get('command')}")


def _in_use(workdir: str, holder: dict) -> WorkdirInUseError:
  return WorkdirInUseError(
      f"--workdir={workdir!r} is in use by another training run ({_describe(holder)}). Wait for "
      "it to finish or stop it, or choose another --workdir")


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


@contextlib.contextmanager
def workdir_lock(workdir: str) -> Iterator[None]:
  """Holds the workdir's run lock for the duration of the block (WorkdirInUseError if held)."""
  if jax.process_index() != 0:
    yield
    return
  path = os.path.join(workdir, LOCK_NAME)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise _in_use(workdir, _read_holder(path)) from None
    except OSError as e:
      if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        raise
      holder = _read_holder(path)  # no flock here: the record is the lock
      if holder.get("pid") is not None and (holder.get("host") != socket.gethostname()
                                            or _pid_alive(int(holder["pid"]))):
        raise _in_use(workdir, holder) from None
      if holder:
        log.warning("taking over the run lock of a process that is gone (%s)", _describe(holder))
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(_holder_record()).encode(), 0)
    try:
      yield
    finally:
      os.ftruncate(fd, 0)  # an empty record: nobody holds the workdir
  finally:
    os.close(fd)  # releases the flock
