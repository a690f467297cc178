"""The persistent XLA compilation cache, on by default, and a count of compilations.

Compiling the full-size NCSN++ training step takes 80-95 s on a 2-core CPU (and
tens of seconds on accelerators); a rerun or resume of the same config compiles
the same programs again. With JAX's persistent compilation cache the compiled
executables are kept on disk and a rerun loads them instead.

Where the cache lives, first match wins:
  1. `--compilation_cache=DIR` on the command line (`off` disables it);
  2. the environment variable `SCOREJAX_COMPILATION_CACHE` (a directory, or `off`);
  3. JAX's own `JAX_COMPILATION_CACHE_DIR` / `jax_compilation_cache_dir`, if set;
  4. `$XDG_CACHE_HOME/scorejax/xla`, by default `~/.cache/scorejax/xla`.
Programs that compile faster than `MIN_COMPILE_SECONDS` are not stored (loading
them would not be faster). The cache may be shared by runs and users; JAX keys
every entry on the program, the compile options, the backend and the JAX version,
so a stale entry is never used. It can be deleted at any time.

`CompileCounter` counts the programs a process obtains (compiled or loaded from the
cache) by function name, from JAX's monitoring events; `main` logs its summary and
the compile-count test asserts that each jitted function of a run is compiled once.
"""

from __future__ import annotations

import collections
import logging
import os
import threading

import jax
from jax import monitoring

log = logging.getLogger(__name__)

ENV = "SCOREJAX_COMPILATION_CACHE"
OFF = ("off", "none", "false", "0")
MIN_COMPILE_SECONDS = 0.5

# JAX's monitoring events (jax/_src/dispatch.py, jax/_src/compiler.py): one per program
# obtained (compiled or loaded), with its function name; one per persistent-cache hit.
_PROGRAM_EVENT = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


def default_dir() -> str:
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "scorejax", "xla")


def resolve_dir(flag_value: str | None = None) -> str | None:
  """The cache directory by the precedence above, or None when the cache is off."""
  for value in (flag_value, os.environ.get(ENV)):
    if value is not None and value != "":
      return None if value.lower() in OFF else os.path.expanduser(value)
  jax_dir = jax.config.jax_compilation_cache_dir
  return jax_dir or default_dir()


def enable(flag_value: str | None = None) -> str | None:
  """Turns the persistent cache on (before the first compilation); returns its directory."""
  path = resolve_dir(flag_value)
  if path is None:
    jax.config.update("jax_enable_compilation_cache", False)
    return None
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    log.warning("compilation cache %s cannot be created (%s): compiling without it; set "
                "--compilation_cache=DIR or %s=DIR to a writable directory", path, e, ENV)
    jax.config.update("jax_enable_compilation_cache", False)
    return None
  jax.config.update("jax_enable_compilation_cache", True)
  jax.config.update("jax_compilation_cache_dir", path)
  if jax.config.jax_persistent_cache_min_compile_time_secs > MIN_COMPILE_SECONDS:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
  return path


class CompileCounter:
  """Counts, while installed, the programs obtained per function name and the cache hits.

  JAX offers no way to remove a monitoring listener, so one process-wide listener
  feeds every counter installed at the time (`with CompileCounter() as counts:`).
  """

  _lock = threading.Lock()
  _active: list["CompileCounter"] = []
  _installed = False

  def __init__(self):
    self.programs: collections.Counter[str] = collections.Counter()
    self.seconds = 0.0
    self.cache_hits = 0

  @classmethod
  def _install(cls) -> None:
    with cls._lock:
      if cls._installed:
        return
      cls._installed = True

    def on_duration(event: str, duration: float, **kwargs) -> None:
      if event == _PROGRAM_EVENT:
        for counter in list(cls._active):
          counter.programs[str(kwargs.get("fun_name", "?"))] += 1
          counter.seconds += duration

    def on_event(event: str, **kwargs) -> None:
      if event == _CACHE_HIT_EVENT:
        for counter in list(cls._active):
          counter.cache_hits += 1

    monitoring.register_event_duration_secs_listener(on_duration)
    monitoring.register_event_listener(on_event)

  def __enter__(self) -> "CompileCounter":
    self._install()
    CompileCounter._active.append(self)
    return self

  def __exit__(self, *exc) -> None:
    CompileCounter._active.remove(self)

  def summary(self) -> str:
    total = sum(self.programs.values())
    return (f"{total} programs compiled or loaded in {self.seconds:.1f} s, "
            f"{self.cache_hits} from the persistent cache")
