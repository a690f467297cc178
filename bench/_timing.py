"""Wall-clock timing shared by the bench scripts: the median of repeated calls after a warm-up,
alone or in alternation with others."""

from __future__ import annotations

import statistics
import time

import jax


def median_seconds(fn, *args, reps: int) -> float:
  """Median seconds of `fn(*args)` over `reps` calls, each waited on, after one warm-up call."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def interleaved_seconds(*timed, reps: int) -> list[float]:
  """Median seconds per call of each `(fn, calls)` in `timed`, measured in alternation: each
  round runs every fn `calls` times in turn (after one warm-up call each), so that a VM whose
  speed drifts from minute to minute slows all of them alike. A rate measured minutes
  after another one can differ from it by 10% on the same program."""
  for fn, _ in timed:
    jax.block_until_ready(fn())
  times = [[] for _ in timed]
  for _ in range(reps):
    for (fn, calls), out in zip(timed, times):
      start = time.perf_counter()
      for _ in range(calls):
        jax.block_until_ready(fn())
      out.append((time.perf_counter() - start) / calls)
  return [statistics.median(t) for t in times]


def compile_and_time(fn, *args, reps: int) -> tuple[float, float]:
  """(compile seconds, `median_seconds` per call) of a jitted `fn` at `args`."""
  start = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - start
  return compile_s, median_seconds(compiled, *args, reps=reps)
