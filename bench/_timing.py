"""Wall-clock timing shared by the bench scripts: the median of repeated calls after a warm-up."""

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


def compile_and_time(fn, *args, reps: int) -> tuple[float, float]:
  """(compile seconds, `median_seconds` per call) of a jitted `fn` at `args`."""
  start = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - start
  return compile_s, median_seconds(compiled, *args, reps=reps)
