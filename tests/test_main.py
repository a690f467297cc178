"""The command line (`python -m scorejax.main`) end to end: training every config, the
train / sample / likelihood modes, preemption (SIGKILL / SIGTERM), multi-process, bad inputs.

The fast tier (`-m "not slow"`) keeps one CLI run per mode on the toy config (train,
sample, likelihood) and two refused commands; the preemption, multi-process and
corrupt-checkpoint runs and the U-Net configs are `slow` (the full suite runs them: one
config per network trains two real steps, the others trace their steps, TRAINED_U_NETS).

Everything goes through the real entry points: `scorejax.training.train_and_evaluate`
in-process (the config sweep, with `tfds.testing.mock_data` for TFDS datasets) and
`python -m scorejax.main` / `launch/local_multiprocess.sh` in subprocesses (the
rest). Subprocesses run on CPU with one device per process, each in its own
session with a timeout (the whole group is killed on expiry), and XLA's CPU
collectives are told to fail instead of hanging
(`--xla_cpu_collective_call_terminate_timeout_seconds`).

Tolerances: a resumed run must equal the uninterrupted one bit for bit (the data
and every random draw are functions of (seed, step), and the step is the same
XLA program). Two processes sum their gradients in a different order than one
process does, so the two-process run matches the single-process run with the
same global batch only to float32 rounding, amplified a little by 20 Adam steps:
the largest difference measured is 1.2e-7 (absolute, parameters of size ~0.1-1), so
rtol 1e-4 / atol 1e-6 holds with a margin of ~10x. The two processes agree with each
other, and with the checkpoint they wrote together, exactly.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from scorejax.training import PREEMPTED_EXIT_CODE

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "configs"
NOT_CONFIGS = {"__init__", "blocks", "smoke", "default_cifar10", "default_celeba", "default_lsun"}  # helpers and dataset defaults
PYTHON = sys.executable
RUN_TIMEOUT = 240  # seconds for any one subprocess (a toy run takes ~5-15 s)

# The toy run used for preemption: 60 steps, a checkpoint every 5 (~0.1-0.3 s each on
# CPU, which leaves a window of several seconds to interrupt it).
TOY_N = 60
TOY_ARGS = ["--config=configs/toy_2d.py:smoke", f"--config.training.n_iters={TOY_N}",
            "--config.training.snapshot_freq=30", "--config.training.snapshot_freq_for_preemption=5",
            "--config.training.log_freq=5", "--config.training.snapshot_sampling=False"]


# ----------------------------------------------------------------------------- helpers

def _env(**extra) -> dict[str, str]:
  """A clean single-process CPU environment for a child process (one device per process)."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")}
  xla_flags = [f for f in env.get("XLA_FLAGS", "").split()
               if not f.startswith("--xla_force_host_platform_device_count")]
  xla_flags.append("--xla_cpu_collective_call_terminate_timeout_seconds=120")
  env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", XLA_FLAGS=" ".join(xla_flags),
             PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
  env.update(extra)
  return env


class Proc:
  """A child process in its own session, output to a file, killed as a group on timeout."""

  def __init__(self, args, log_path: Path, env=None):
    self.log_path = log_path
    self._log = open(log_path, "w")
    self.p = subprocess.Popen(args, cwd=REPO, env=env or _env(), stdout=self._log,
                              stderr=subprocess.STDOUT, start_new_session=True)

  @property
  def pid(self) -> int:
    return self.p.pid

  def poll(self):
    return self.p.poll()

  def kill_group(self) -> None:
    try:
      os.killpg(self.p.pid, signal.SIGKILL)
    except ProcessLookupError:
      pass

  def wait(self, timeout: float = RUN_TIMEOUT) -> int:
    try:
      rc = self.p.wait(timeout)
    except subprocess.TimeoutExpired:
      self.kill_group()
      self.p.wait()
      pytest.fail(f"{self.p.args} timed out after {timeout} s; output:\n{self.output()[-4000:]}")
    finally:
      self._log.close()
    return rc

  def output(self) -> str:
    return self.log_path.read_text(errors="replace")


def cli(workdir: Path, *args: str, log_name: str = "log.txt", env=None) -> tuple[int, str]:
  """Runs `python -m scorejax.main --workdir=... args` to completion: (exit code, output)."""
  log_dir = workdir.parent if workdir.parent.is_dir() else workdir.parent.parent
  log_path = log_dir / f"{workdir.name}_{log_name}"
  proc = Proc([PYTHON, "-m", "scorejax.main", f"--workdir={workdir}", *args], log_path, env)
  rc = proc.wait()
  return rc, proc.output()


def ok(result: tuple[int, str]) -> str:
  rc, out = result
  assert rc == 0, f"exit code {rc}; output:\n{out[-4000:]}"
  return out


def checkpoint_steps(workdir: Path) -> list[int]:
  """Steps of the finished checkpoints (orbax writes to a temporary name, then renames)."""
  d = workdir / "checkpoints"
  return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def read_checkpoint(workdir: Path, step: int | None = None):
  """The saved TrainState at `step` (default: the latest) as a pytree of host arrays.

  Works whatever topology wrote it (one process or several): the target tree is
  built from the checkpoint's metadata with this process's single device.
  """
  import orbax.checkpoint as ocp
  step = checkpoint_steps(workdir)[-1] if step is None else step
  path = workdir / "checkpoints" / str(step) / "state"
  ckptr = ocp.StandardCheckpointer()
  meta = ckptr.metadata(path)
  tree = getattr(getattr(meta, "item_metadata", meta), "tree", getattr(meta, "item_metadata", meta))
  device = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)
  return jax.tree.map(np.asarray, ckptr.restore(path, target))


def named_leaves(tree) -> dict[str, np.ndarray]:
  """{'params.Dense_0.bias': array, ...}: the same names for a TrainState and its checkpoint."""
  return {".".join(re.findall(r"\w+", jax.tree_util.keystr(path))): np.asarray(x)
          for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def assert_trees_equal(a, b, *, rtol: float = 0.0, atol: float = 0.0) -> None:
  """Same leaves (by name) with equal values: bit for bit unless a tolerance is given."""
  la = a if isinstance(a, dict) and all(isinstance(v, np.ndarray) for v in a.values()) else named_leaves(a)
  lb = b if isinstance(b, dict) and all(isinstance(v, np.ndarray) for v in b.values()) else named_leaves(b)
  assert sorted(la) == sorted(lb), f"different leaves:\n{sorted(la)}\n{sorted(lb)}"
  assert la, "empty tree"
  for name, x in la.items():
    y = lb[name]
    if rtol == 0.0 and atol == 0.0:
      np.testing.assert_array_equal(x, y, err_msg=name)
    else:
      np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=name)


def wait_for_checkpoint(proc: Proc, workdir: Path, min_step: int, timeout: float = RUN_TIMEOUT) -> int:
  """Polls until a checkpoint at a step >= `min_step` exists; returns the newest step."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    steps = checkpoint_steps(workdir)
    if steps and steps[-1] >= min_step:
      return steps[-1]
    if proc.poll() is not None:
      pytest.fail(f"the run ended (exit code {proc.poll()}) before a checkpoint at step >= {min_step}:"
                  f"\n{proc.output()[-4000:]}")
    time.sleep(0.01)
  proc.kill_group()
  pytest.fail(f"no checkpoint at step >= {min_step} after {timeout} s:\n{proc.output()[-4000:]}")


def resumed_step(output: str) -> int:
  m = re.search(r"resumed from the checkpoint at step (\d+)", output)
  assert m, f"the rerun did not resume:\n{output[-4000:]}"
  return int(m.group(1))


def tree_listing(root: Path) -> dict[str, tuple[int, int]]:
  """path -> (size, mtime_ns) of every file under `root` (to show nothing changed)."""
  return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
          for p in sorted(root.rglob("*")) if p.is_file()}


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


# ----------------------------------------------------------------------------- 1. every config

# Configs that are a swept config with only the training loss's flags changed: the
# maximum-likelihood variants (likelihood + importance weighting) of vp/subvp_cifar10 and
# digits. Each would cost another ~30-60 s U-Net compilation here; the loss they train with
# is tested in test_time_sampling.py, and digits_likelihood trains 1000 steps through the
# command line in test_likelihood_training.py (slow).
SWEPT_ELSEWHERE = {"vp_cifar10_likelihood", "subvp_cifar10_likelihood", "digits_likelihood"}


def _config_names() -> list[str]:
  return [p.stem for p in sorted(CONFIG_DIR.glob("*.py"))
          if p.stem not in NOT_CONFIGS | SWEPT_ELSEWHERE and "def get_config" in p.read_text()]


def _load_config(name: str):
  module = importlib.import_module(f"configs.{name}")
  try:
    return module.get_config("smoke")
  except ValueError:  # a config without a :smoke variant is small already
    return module.get_config()


# The configs that train two real steps: the MLP ones (seconds) and one U-Net config per
# network family (every U-Net compiles its train step for ~30-100 s on 2 cores). The other
# U-Net configs differ from these only in SDE, depth or image size: they trace their train
# and eval steps abstractly (`test_config_traces_its_steps`, a few seconds each), which
# catches a missing field or a shape mismatch without paying for the compilation.
TRAINED_U_NETS = {"digits", "ve_cifar10", "ddpm_cifar10", "ncsnv2_cifar10", "ncsnv2_bedroom"}


def _is_mlp(name: str) -> bool:
  return _load_config(name).model.name == "mlp"


def _config_params():
  params = []
  for name in _config_names():
    mlp = _is_mlp(name)
    if mlp or name in TRAINED_U_NETS:
      params.append(pytest.param(name, id=name, marks=[] if mlp else [pytest.mark.slow]))
  return params


def test_every_u_net_family_trains_for_real():
  """TRAINED_U_NETS names real configs and covers every network the configs use."""
  names = set(_config_names())
  assert TRAINED_U_NETS <= names, TRAINED_U_NETS - names
  models = lambda group: {_load_config(n).model.name for n in group}
  assert models(names - {n for n in names if _is_mlp(n)}) == models(TRAINED_U_NETS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(n for n in _config_names()
                                        if n not in TRAINED_U_NETS and not _is_mlp(n)))
def test_config_traces_its_steps(name):
  """The train and eval steps of `name`'s smoke variant, traced with abstract arrays
  (`jax.eval_shape`: no compilation, no data): finite shapes, a scalar loss, and an
  updated state of exactly the initial state's structure and shapes."""
  from scorejax import config_check
  from scorejax.training import setup

  config = _load_config(name)
  config_check.validate(config)
  c = setup.build_components(config)
  key = jax.random.key(0)
  state = jax.eval_shape(lambda k: setup.init_state(c, k), key)
  images = jax.ShapeDtypeStruct((2,) + c.data_shape, np.float32)
  batch = images
  if setup.num_classes(config):
    batch = {"image": images, "label": jax.ShapeDtypeStruct((2,), np.int32)}
  step = setup.scaled_train_step(c, float(config.model.ema_rate))
  new_state, metrics = jax.eval_shape(step, state, batch, key)
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  assert jax.tree.map(lambda a: (a.shape, a.dtype), new_state) == \
      jax.tree.map(lambda a: (a.shape, a.dtype), state)
  assert metrics["loss"].shape == () and metrics["grad_norm"].shape == ()
  eval_metrics = jax.eval_shape(setup.scaled_eval_step(c), state, batch, key)
  assert eval_metrics["eval_loss"].shape == ()


# One U-Net config also runs the held-out evaluation and a (cheap, ODE) sample grid;
# the others skip them to keep the sweep's compile time down.
_FULL_PIPELINE = {"toy_2d", "digits", "ve_cifar10"}


@pytest.mark.parametrize("name", _config_params())
def test_config_trains_two_steps(name, tmp_path):
  import tensorflow_datasets as tfds
  from scorejax import config_check, data
  from scorejax.training import train_and_evaluate

  config = _load_config(name)
  n_dev = jax.device_count()
  t = config.training
  t.n_iters = 2
  t.batch_size = 2 * n_dev
  config.eval.batch_size = 2 * n_dev
  t.snapshot_freq = 2
  t.snapshot_freq_for_preemption = 1
  t.log_freq = 1
  full = name in _FULL_PIPELINE
  t.eval_freq = 2 if full else 0
  t.snapshot_sampling = full
  t.snapshot_sample_count = 4
  config.sampling.method = "ode"
  config.sampling.rtol = config.sampling.atol = 1e-2
  config_check.validate(config)

  workdir = tmp_path / "run"
  if config.data.dataset in data.IMAGE_DATASETS:
    with tfds.testing.mock_data(num_examples=8):
      state = train_and_evaluate(config, str(workdir))
  else:
    state = train_and_evaluate(config, str(workdir))

  assert int(state.step) == 2
  for leaf in jax.tree.leaves(state.params):
    assert np.all(np.isfinite(np.asarray(leaf)))
  assert checkpoint_steps(workdir) == [2]  # step 1 rotated out (max_to_keep=1)
  assert_trees_equal(read_checkpoint(workdir)["params"], jax.tree.map(np.asarray, state.params))
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  train_steps = [r["step"] for r in records if "grad_norm" in r]
  assert train_steps == [1, 2]
  train_losses = [r["loss"] for r in records if "grad_norm" in r]
  assert len(train_losses) == 2 and all(np.isfinite(v) for v in train_losses), records
  assert all(np.isfinite(v) for r in records for k, v in r.items() if "loss" in k)
  assert (workdir / "config.json").is_file()
  if full:
    assert [r["step"] for r in records if "eval_loss" in r] == [2]
    assert all(np.isfinite(r["eval_loss"]) for r in records if "eval_loss" in r)
    assert (workdir / "samples" / "step_00000002.png").is_file()


# ----------------------------------------------------------------------------- 2. preemption

@pytest.fixture(scope="module")
def toy_reference(tmp_path_factory):
  """The uninterrupted toy run: its final TrainState."""
  workdir = tmp_path_factory.mktemp("reference") / "run"
  ok(cli(workdir, *TOY_ARGS))
  assert checkpoint_steps(workdir)[-1] == TOY_N
  return read_checkpoint(workdir)


@pytest.mark.slow
def test_sigkill_then_rerun_is_bit_exact(toy_reference, tmp_path):
  rng = random.Random(20240607)
  target = rng.choice(range(10, 41, 5))     # kill once this checkpoint exists ...
  delay = rng.uniform(0.0, 0.3)             # ... plus a little (possibly mid-save)
  workdir = tmp_path / "run"
  proc = Proc([PYTHON, "-m", "scorejax.main", f"--workdir={workdir}", *TOY_ARGS],
              tmp_path / "killed.txt")
  wait_for_checkpoint(proc, workdir, target)
  time.sleep(delay)
  assert proc.poll() is None, "the run finished before it could be killed; lengthen it"
  os.kill(proc.pid, signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL
  steps = checkpoint_steps(workdir)
  assert target <= steps[-1] < TOY_N, steps

  out = ok(cli(workdir, *TOY_ARGS, log_name="rerun.txt"))
  assert resumed_step(out) == steps[-1]
  assert checkpoint_steps(workdir)[-1] == TOY_N
  assert_trees_equal(read_checkpoint(workdir), toy_reference)


@pytest.mark.slow
def test_sigterm_saves_stops_cleanly_and_resumes(toy_reference, tmp_path):
  workdir = tmp_path / "run"
  proc = Proc([PYTHON, "-m", "scorejax.main", f"--workdir={workdir}", *TOY_ARGS],
              tmp_path / "terminated.txt")
  wait_for_checkpoint(proc, workdir, 10)
  assert proc.poll() is None, "the run finished before it could be signalled; lengthen it"
  os.kill(proc.pid, signal.SIGTERM)
  assert proc.wait() == PREEMPTED_EXIT_CODE, proc.output()[-4000:]
  m = re.search(r"stopped by a signal at step (\d+)", proc.output())
  assert m, proc.output()[-4000:]
  stopped = int(m.group(1))
  assert 10 <= stopped < TOY_N
  assert checkpoint_steps(workdir)[-1] == stopped  # saved at the step it stopped
  assert int(read_checkpoint(workdir)["step"]) == stopped

  out = ok(cli(workdir, *TOY_ARGS, log_name="rerun.txt"))
  assert resumed_step(out) == stopped
  assert_trees_equal(read_checkpoint(workdir), toy_reference)


# ----------------------------------------------------------------------------- 3. multi-process

# Runs the real CLI, and afterwards writes this process's copy of the final state
# (its addressable shard of every replicated array) to workdir/state_<process>.npz.
_DRIVER = textwrap.dedent("""
    import os, runpy, sys
    import numpy as np
    assert sys.argv[1:3] == ["-m", "scorejax.main"], sys.argv
    sys.argv = ["scorejax.main"] + sys.argv[3:]
    sys.path.insert(0, os.getcwd())
    from scorejax.training import parallel
    parallel.maybe_initialize_distributed()
    import re
    import jax
    import scorejax.training.loop as loop
    _train = loop.train_and_evaluate
    def train_and_dump(config, workdir, **kwargs):
      state = _train(config, workdir, **kwargs)
      leaves = {".".join(re.findall(r"\\w+", jax.tree_util.keystr(path))):
                np.asarray(x.addressable_data(0))
                for path, x in jax.tree_util.tree_flatten_with_path(state)[0]}
      np.savez(os.path.join(workdir, f"state_{jax.process_index()}.npz"), **leaves)
      return state
    loop.train_and_evaluate = train_and_dump
    runpy.run_module("scorejax.main", run_name="__main__", alter_sys=True)
""")

MP_ARGS = ["--config=configs/toy_2d.py:smoke", "--config.training.eval_freq=10",
           "--config.training.snapshot_sample_count=16", "--config.sampling.rtol=1e-3",
           "--config.sampling.atol=1e-3"]


def _npz_leaves(path: Path) -> dict[str, np.ndarray]:
  with np.load(path) as f:
    return {name: f[name] for name in f.files}


@pytest.mark.slow
def test_two_processes_agree_and_match_one_process(trained_workdir, tmp_path):
  driver = tmp_path / "driver.py"
  driver.write_text(_DRIVER)
  wrapper = tmp_path / "python"
  wrapper.write_text(f'#!/bin/sh\nexec "{PYTHON}" "{driver}" "$@"\n')
  wrapper.chmod(0o755)
  mp_dir = tmp_path / "two"
  env = _env(PYTHON=str(wrapper), JAX_COORDINATOR_PORT=str(free_port()))
  proc = Proc(["bash", str(REPO / "launch" / "local_multiprocess.sh"), "2", *MP_ARGS,
               f"--workdir={mp_dir}"], tmp_path / "two.txt", env)
  rc = proc.wait()
  assert rc == 0, proc.output()[-6000:]

  # Both processes end with the same state, bit for bit, and it is what was checkpointed
  # (collectively: the single checkpoint written by both).
  s0, s1 = _npz_leaves(mp_dir / "state_0.npz"), _npz_leaves(mp_dir / "state_1.npz")
  assert_trees_equal(s0, s1)
  ckpt = read_checkpoint(mp_dir)
  assert int(ckpt["step"]) == 20
  assert_trees_equal(ckpt, s0)
  assert (mp_dir / "samples" / "step_00000020.png").is_file()

  # One process with the same global batch (the same training config; evaluation and
  # sampling read the parameters, they never change them): equal up to the order of
  # the gradient sum.
  assert_trees_equal(read_checkpoint(trained_workdir), ckpt, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- 4. bad inputs

@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
  """A finished toy run (checkpoints at 10 and 20) that bad commands must leave intact."""
  workdir = tmp_path_factory.mktemp("trained") / "run"
  ok(cli(workdir, "--config=configs/toy_2d.py:smoke", "--config.training.snapshot_sampling=False"))
  assert checkpoint_steps(workdir) == [10, 20]
  return workdir


# Each case is a CLI start (~4 s); the fast tier keeps the two the parser itself
# reports, the config errors are checked in-process in test_config_check.py.
@pytest.mark.parametrize("args, expected", [
    (["--config.training.nope=1"], ["config.training.nope", "valid fields of config.training"]),
    pytest.param(["--config.training.sde=subvpsde", "--config.training.continuous=False"],
                 ["config.training.continuous=False", "sub-VP", "--config.training.continuous=True"],
                 marks=pytest.mark.slow),
    pytest.param(["--mode=bogus"], ["--mode='bogus'", "'train'"], marks=pytest.mark.slow),
    (["--divergence=exact"], ["--divergence is an option of --mode=likelihood", "not of --mode=train"]),
    pytest.param(["--mode=fid_stats", "--split=test"], ["--mode=fid_stats needs --out"],
                 marks=pytest.mark.slow),
], ids=["unknown_key", "subvp_discrete_loss", "unknown_mode", "option_of_another_mode",
        "fid_stats_without_out"])
def test_bad_command_fails_clearly_and_changes_nothing(trained_workdir, args, expected):
  before = tree_listing(trained_workdir)
  rc, out = cli(trained_workdir, "--config=configs/toy_2d.py:smoke", *args,
                log_name=f"bad_{abs(hash(tuple(args)))}.txt")
  assert rc != 0, out[-4000:]
  for text in expected:
    assert text in out, f"{text!r} missing from:\n{out[-4000:]}"
  assert tree_listing(trained_workdir) == before


def test_workdir_under_a_regular_file(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("precious")
  workdir = blocker / "run"
  rc, out = cli(workdir, "--config=configs/toy_2d.py:smoke")
  assert rc != 0
  assert f"--workdir={str(workdir)!r}" in out and "Not a directory" in out, out[-4000:]
  assert blocker.read_text() == "precious"


@pytest.mark.slow  # in-process: test_training.py::test_checkpoint_falls_back_from_a_corrupt_latest
def test_corrupt_latest_checkpoint_falls_back_and_continues(trained_workdir, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained_workdir, workdir)
  # Garble the array data of the newest checkpoint (its metadata stays readable).
  data_files = [p for p in (workdir / "checkpoints" / "20").rglob("*")
                if p.is_file() and p.parent.name == "d"]
  assert data_files
  for p in data_files:
    p.write_bytes(np.random.default_rng(0).bytes(p.stat().st_size))

  out = ok(cli(workdir, "--config=configs/toy_2d.py:smoke", "--config.training.snapshot_sampling=False",
               "--config.training.n_iters=30"))
  assert "checkpoint at step 20 could not be restored" in out, out[-4000:]
  assert resumed_step(out) == 10
  assert checkpoint_steps(workdir)[-1] == 30
  assert int(read_checkpoint(workdir)["step"]) == 30
  # The unreadable checkpoint is kept for inspection, not deleted.
  assert (workdir / "checkpoints" / "unreadable_step_20").is_dir()


# ----------------------------------------------------------------------------- 5. samples

SAMPLE_ARGS = ["--config=configs/toy_2d.py:smoke", "--config.training.snapshot_sample_count=16",
               "--config.sampling.method=pc", "--config.sampling.corrector=none",
               "--config.model.num_scales=100"]


def test_sample_mode_draws_the_grid_of_the_newest_checkpoint(trained_workdir, tmp_path):
  """`--mode=sample` on the toy run just trained: the newest checkpoint's EMA parameters,
  the config's sampler (here 100 reverse-diffusion steps), the key of its step
  (fold_in(key(seed + 1), step), as training's snapshots); the 2-D figures are written
  under samples/sample_mode/, named by the sampler."""
  from configs import toy_2d
  from scorejax.training import setup

  workdir = tmp_path / "run"
  shutil.copytree(trained_workdir, workdir)
  before = tree_listing(workdir / "checkpoints")
  out = ok(cli(workdir, "--mode=sample", *SAMPLE_ARGS))
  name = "step_00000020_pc_reverse_diffusion_none"
  grid = workdir / "samples" / "sample_mode" / name
  assert f"samples written to {grid}.png" in out, out[-4000:]
  assert sorted(p.name for p in (workdir / "samples").iterdir()) == ["sample_mode"]
  assert sorted(p.name for p in grid.parent.iterdir()) == [
      f"{name}.npy", f"{name}.png", f"{name}_score_t0.05.png", f"{name}_score_t0.3.png"]
  assert tree_listing(workdir / "checkpoints") == before  # sampling changes no checkpoint

  config = toy_2d.get_config("smoke")
  config.training.snapshot_sample_count = 16
  config.sampling.method, config.sampling.corrector, config.model.num_scales = "pc", "none", 100
  c, s = setup.build_components(config), setup.SampleSettings.from_config(config)
  state, step = setup.load_state(c, str(trained_workdir), seed=s.seed, snapshot_freq=10)
  assert step == 20
  want = setup.make_snapshot_sampler(c, s)(state, jax.random.fold_in(jax.random.key(s.seed + 1), 20))
  samples = np.load(f"{grid}.npy")
  assert samples.shape == (16, 2)
  np.testing.assert_allclose(samples, np.asarray(want), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- 6. bits/dim

def test_likelihood_mode_on_a_freshly_trained_toy_run(trained_workdir, tmp_path):
  """`--mode=likelihood` on the toy run just trained: the newest checkpoint by default,
  the options as given, bits/dim and the variational bound printed and written as JSON,
  one CSV row per example; run on 2 devices (each batch split over them, the last one
  partly masked by --max_examples), equal to the library's on one."""
  from configs import toy_2d
  from scorejax.evaluation.bpd import evaluate_bpd

  workdir = tmp_path / "run"
  shutil.copytree(trained_workdir, workdir)
  options = dict(max_examples=90, batch_size=32, divergence="exact", rtol=1e-3, atol=1e-3,
                 bound_n_t=16)
  env = _env()
  env["XLA_FLAGS"] += " --xla_force_host_platform_device_count=2"
  out = ok(cli(workdir, "--config=configs/toy_2d.py:smoke", "--mode=likelihood",
               *(f"--{k}={v}" for k, v in options.items()), env=env))
  assert "checkpoint 20, test split, 90 examples x 1 dequantization draw(s), divergence=exact" in out, out
  assert "bits/dim = " in out, out
  result = json.loads((workdir / "likelihood_test_step20.json").read_text())
  assert result["step"] == 20 and not result["untrained"]
  assert result["num_examples"] == 90 and result["num_repeats"] == 1
  assert (result["divergence"], result["rtol"], result["atol"]) == ("exact", 1e-3, 1e-3)
  assert result["offset"] == 0.0  # 2-D toy points: no dequantization offset
  assert np.isfinite(result["bpd"]) and np.isfinite(result["bpd_stderr"]) and result["nfe_mean"] > 0

  # The variational bound too, and one row per example (index, bpd ODE, bpd bound, NFE).
  assert "variational bound = " in out and result["bound_n_t"] == 16, out
  assert np.isfinite(result["bound_bpd"]) and np.isfinite(result["bound_bpd_stderr"])
  with open(workdir / "likelihood_test_step20_examples.csv") as f:
    rows = list(csv.DictReader(f))
  assert [int(r["index"]) for r in rows] == list(range(90))
  assert list(rows[0]) == ["index", "bpd_ode", "bpd_bound", "nfe_ode", "nfe_bound"]
  ode = np.array([float(r["bpd_ode"]) for r in rows])
  bound = np.array([float(r["bpd_bound"]) for r in rows])
  np.testing.assert_allclose(ode.mean(), result["bpd"], rtol=1e-5)
  np.testing.assert_allclose(bound.mean(), result["bound_bpd"], rtol=1e-5)
  assert {int(r["nfe_bound"]) for r in rows} == {17} and all(int(r["nfe_ode"]) > 0 for r in rows)

  library = evaluate_bpd(toy_2d.get_config("smoke"), str(workdir), **options)
  np.testing.assert_allclose(library["bpd"], result["bpd"], rtol=1e-5)
  np.testing.assert_allclose(library["bound_bpd"], result["bound_bpd"], rtol=1e-5)
