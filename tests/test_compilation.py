"""Compilation: each jitted function of a run is compiled once, and the persistent cache
is on by default so that a rerun loads its programs instead of compiling them again.

`CompileCounter` counts the programs a process obtains (compiled, or loaded from the
persistent cache: JAX reports both through the same event) per function name. A run
that compiled anything per step (a Python scalar that changes, a shape that varies, a
jitted function rebuilt in the loop) would show it as a count above one and as a
total that grows with the number of steps.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scorejax import compilation_cache
from scorejax.training import train_and_evaluate

REPO = Path(__file__).resolve().parents[1]
# The jitted functions of a training run with evaluation and snapshot grids.
RUN_FUNCTIONS = ("init_state", "train_steps", "eval_step", "_copy_state", "snapshot_sample")


def _toy_config(n_iters: int):
  from configs import toy_2d
  config = toy_2d.get_config("smoke")
  t = config.training
  t.n_iters = n_iters
  t.eval_freq = 2
  t.log_freq = 1
  t.snapshot_freq = 2
  t.snapshot_freq_for_preemption = 2
  t.snapshot_sampling = True
  return config


def _programs(tmp_path, n_iters: int):
  with compilation_cache.CompileCounter() as counts:
    train_and_evaluate(_toy_config(n_iters), str(tmp_path / f"run{n_iters}"))
  return counts.programs


def test_each_jitted_function_of_a_run_compiles_once(tmp_path):
  """The first run compiles each function once; a second run of three times the steps
  in the same process compiles nothing more than the first did (JAX's in-memory cache
  may spare it some), so nothing is compiled per step or per snapshot."""
  short, long = _programs(tmp_path, 2), _programs(tmp_path, 6)
  # (A function jitted from the same Python function object, like _copy_state, may come
  # from JAX's in-memory cache of an earlier test in this process: at most once, then.)
  for name in RUN_FUNCTIONS:
    assert short[f"jit({name})"] <= 1 and long[f"jit({name})"] <= 1, (name, short, long)
  assert short["jit(train_steps)"] == 1, short
  assert sum(long.values()) <= sum(short.values()), (short, long)


def test_cache_directory_precedence(monkeypatch, tmp_path):
  monkeypatch.delenv(compilation_cache.ENV, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  import jax
  jax_dir = jax.config.jax_compilation_cache_dir  # the test session's (tests/conftest.py)
  assert compilation_cache.resolve_dir(None) == (jax_dir or compilation_cache.default_dir())
  assert compilation_cache.default_dir() == str(tmp_path / "xdg" / "scorejax" / "xla")
  assert compilation_cache.resolve_dir("/x/flag") == "/x/flag"
  assert compilation_cache.resolve_dir("off") is None
  monkeypatch.setenv(compilation_cache.ENV, "/x/env")
  assert compilation_cache.resolve_dir(None) == "/x/env"
  assert compilation_cache.resolve_dir("/x/flag") == "/x/flag"
  monkeypatch.setenv(compilation_cache.ENV, "OFF")
  assert compilation_cache.resolve_dir(None) is None


_SUMMARY = re.compile(r"compilation: (\d+) programs compiled or loaded in [\d.]+ s, "
                      r"(\d+) from the persistent cache \(cache: (.*)\)")


def _cli(workdir, *args, env):
  proc = subprocess.run(
      [sys.executable, "-m", "scorejax.main", "--config=configs/toy_2d.py:smoke",
       f"--workdir={workdir}", *args],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  match = _SUMMARY.search(proc.stderr)
  assert match, proc.stderr[-3000:]
  return int(match.group(1)), int(match.group(2)), match.group(3)


@pytest.mark.slow  # two CLI runs (~10 s each)
def test_a_rerun_loads_its_programs_from_the_default_cache(tmp_path):
  """With no setting at all the cache is ~/.cache/scorejax/xla ($XDG_CACHE_HOME), and a
  second run of the same config (fresh workdir) loads the programs the first compiled."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAX_COMPILATION_CACHE_DIR", compilation_cache.ENV)}
  env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), JAX_PLATFORMS="cpu",
             # The toy programs compile in well under MIN_COMPILE_SECONDS: keep them all.
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
  env.pop("XLA_FLAGS", None)
  args = ("--config.training.n_iters=4", "--config.training.snapshot_sampling=False")
  programs, hits, where = _cli(tmp_path / "a", *args, env=env)
  assert where == str(tmp_path / "xdg" / "scorejax" / "xla"), where
  assert os.listdir(where)
  # (A first run may hit already: identical programs compiled from two places.)
  programs2, hits2, _ = _cli(tmp_path / "b", *args, env=env)
  print(f"first run: {programs} programs, {hits} cache hits; second: {programs2}, {hits2}")
  # The second run compiles nothing: every program it obtains is loaded. (Its count may
  # differ from the first run's by a program that two data-loader threads obtained at
  # the same moment, each missing JAX's in-memory cache: seen in CI as 18 then 19.)
  assert hits2 == programs2 > 0, (programs, hits, programs2, hits2)
  assert abs(programs2 - programs) <= 2, (programs, hits, programs2, hits2)
  # And off means off.
  _, hits3, where3 = _cli(tmp_path / "c", *args, "--compilation_cache=off", env=env)
  assert hits3 == 0 and where3 == "off"


def test_initializers_compiled_for_a_short_compile_give_the_same_parameters():
  """`jit_init_state` compiles the initializers with fewer LLVM optimizations on CPU
  (`INIT_CPU_COMPILER_OPTIONS`): the state is bit-identical to a default compile's."""
  import jax
  import numpy as np
  from configs import digits
  from scorejax import training
  from scorejax.training import setup

  c = training.build_components(digits.get_config("smoke"))
  key = jax.random.key(3)
  fast = setup.jit_init_state(c, None)(key)
  default = jax.jit(lambda k: setup.init_state(c, k))(key)
  assert jax.default_backend() != "cpu" or setup.INIT_CPU_COMPILER_OPTIONS
  leaves, expected = jax.tree.leaves(fast), jax.tree.leaves(default)
  assert len(leaves) == len(expected) > 10
  for a, b in zip(leaves, expected):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
