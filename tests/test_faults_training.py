"""Fault injection on training runs: each case of the reliability report, rerun as written.

The toy config at 60 steps (checkpoints every 10, snapshots every 20) is trained
in-process with `train_and_evaluate` (a few seconds per run; the XLA cache makes
reruns cheap); the two cases that need two processes (two runs on one workdir,
the preemption exit code) start the real command line. Every case asserts that
the run stops or refuses with a message naming the cause and the fix, and that
nothing saved is lost or corrupt: every checkpoint left behind restores, verifies
and is finite.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from scorejax.config_check import ConfigError
from scorejax.training import (NonFiniteLossError, PREEMPTED_EXIT_CODE, TrainState, checkpoint,
                               optim, train_and_evaluate)
from scorejax.training.guard import DivergenceGuard
from scorejax.training.run_config import ConfigMismatchError, classify_changes
from scorejax.training.run_lock import LOCK_NAME, WorkdirInUseError, workdir_lock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from configs import toy_2d  # noqa: E402


def toy_config(**overrides):
  """The reliability report's toy run: 60 steps, checkpoints every 10, snapshots every 20."""
  config = toy_2d.get_config("smoke")
  t = config.training
  t.n_iters, t.snapshot_freq, t.snapshot_freq_for_preemption = 60, 20, 10
  t.log_freq, t.snapshot_sampling = 10, False
  for name, value in overrides.items():
    node = config
    *parents, leaf = name.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def saved_steps(workdir: Path) -> list[int]:
  return checkpoint.saved_steps(str(workdir / "checkpoints"))


def restore(workdir: Path, step: int):
  """The checkpoint of `step` through the verified restore, as host arrays."""
  manager = ocp.CheckpointManager(str((workdir / "checkpoints").resolve()))
  try:
    path = workdir / "checkpoints" / str(step) / checkpoint.STATE_ITEM
    meta = ocp.StandardCheckpointer().metadata(path)
    tree = getattr(getattr(meta, "item_metadata", meta), "tree", getattr(meta, "item_metadata", meta))
    device = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)
    return jax.tree.map(np.asarray, checkpoint.restore_step(manager, step, target))
  finally:
    manager.close()


def assert_all_checkpoints_good(workdir: Path) -> None:
  steps = saved_steps(workdir)
  for step in steps:
    state = restore(workdir, step)  # verifies checksums and finiteness
    assert int(state["step"]) == step
    assert max(float(np.max(np.abs(x))) for x in jax.tree.leaves(state["params"])) < 1e3, step


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
  """A finished 60-step toy run (checkpoints 20, 40, 60) to copy from."""
  workdir = tmp_path_factory.mktemp("trained") / "run"
  train_and_evaluate(toy_config(), str(workdir))
  assert saved_steps(workdir) == [20, 40, 60]
  return workdir


def copy_run(trained: Path, tmp_path: Path) -> Path:
  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)
  return workdir


# --------------------------------------------------------------- 1. corrupted checkpoint bytes

def _flip_bytes_of_largest_array_file(step_dir: Path, n: int = 64) -> None:
  files = [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]
  largest = max(files, key=lambda p: p.stat().st_size)
  data = bytearray(largest.read_bytes())
  rng = np.random.default_rng(0)
  for i in rng.choice(len(data), size=min(n, len(data)), replace=False):
    data[i] ^= 0xFF
  largest.write_bytes(bytes(data))


def test_flipped_bytes_in_the_newest_checkpoint_are_caught_and_it_is_set_aside(tmp_path, caplog):
  tx = optim.make_optimizer(lr=1e-3)
  state = TrainState.create({"w": jnp.linspace(0.0, 1.0, 4096)}, tx)
  manager = checkpoint.make_manager(str(tmp_path), snapshot_freq=10)
  for s in (10, 20):
    checkpoint.save(manager, s, state.replace(step=jnp.int32(s)))
  manager.close()
  _flip_bytes_of_largest_array_file(tmp_path / "20")

  manager = checkpoint.make_manager(str(tmp_path), snapshot_freq=10)
  with caplog.at_level(logging.WARNING):
    restored, step = checkpoint.restore_latest(manager, checkpoint.abstract_like(state))
  assert step == 10 and int(restored.step) == 10
  assert "checkpoint at step 20 could not be restored" in caplog.text
  assert (tmp_path / "unreadable_step_20").is_dir()
  # Asked for by its step (sampling, evaluation), the corrupt checkpoint is refused too.
  shutil.copytree(tmp_path / "unreadable_step_20", tmp_path / "20")
  manager.reload()
  with pytest.raises(Exception) as info:
    checkpoint.restore_step(manager, 20, checkpoint.abstract_like(state))
  assert not isinstance(info.value, FileNotFoundError)


def test_checksums_catch_a_finite_alteration(tmp_path):
  """Values changed after saving (finite, plausible) differ from the stored checksums."""
  tx = optim.make_optimizer(lr=1e-3)
  state = TrainState.create({"w": jnp.arange(8.0)}, tx)
  manager = checkpoint.make_manager(str(tmp_path), snapshot_freq=10)
  checkpoint.save(manager, 10, state)
  sums, _ = checkpoint.fingerprint(state)
  altered = state.replace(params={"w": jnp.arange(8.0) + 1e-3})
  with pytest.raises(checkpoint.CorruptCheckpointError, match="checksums"):
    checkpoint._verify(altered, sums, 10)
  checkpoint._verify(state, sums, 10)  # the true state passes


def test_non_finite_checkpoint_is_refused_even_with_matching_checksums(tmp_path):
  tx = optim.make_optimizer(lr=1e-3)
  bad = TrainState.create({"w": jnp.array([1.0, jnp.inf, 2.0])}, tx)
  sums, nonfinite = checkpoint.fingerprint(bad)
  assert nonfinite
  with pytest.raises(checkpoint.CorruptCheckpointError, match="NaN or infinity"):
    checkpoint._verify(bad, sums, 5)
  manager = checkpoint.make_manager(str(tmp_path), snapshot_freq=10)
  with pytest.raises(checkpoint.NonFiniteStateError, match="refusing to save step 5"):
    checkpoint.save(manager, 5, bad)
  assert manager.all_steps() == []


@pytest.mark.slow
def test_corrupt_newest_checkpoint_of_a_run_is_not_copied_forward(trained, tmp_path, caplog):
  workdir = copy_run(trained, tmp_path)
  _flip_bytes_of_largest_array_file(workdir / "checkpoints" / "60")
  with caplog.at_level(logging.WARNING):
    state = train_and_evaluate(toy_config(**{"training.n_iters": 80}), str(workdir))
  assert "checkpoint at step 60 could not be restored" in caplog.text
  assert "resumed from step 40" in caplog.text
  assert int(state.step) == 80
  assert saved_steps(workdir) == [20, 40, 60, 80]
  assert (workdir / "checkpoints" / "unreadable_step_60").is_dir()
  assert_all_checkpoints_good(workdir)


# --------------------------------------------------------------- 2, 5. divergence

@pytest.mark.parametrize("lr, cause", [
    (1e38, "loss became"),
    pytest.param(1e10, "gradient norm became", marks=pytest.mark.slow)],
    ids=["nan_loss", "finite_loss_infinite_gradient"])
def test_divergence_stops_the_run_and_every_checkpoint_left_is_good(tmp_path, lr, cause):
  workdir = tmp_path / "run"
  with pytest.raises(NonFiniteLossError, match=cause) as info:
    train_and_evaluate(toy_config(**{"optim.lr": lr, "optim.warmup": 0}), str(workdir))
  message = str(info.value)
  assert "Lower config.optim.lr" in message
  assert_all_checkpoints_good(workdir)
  # A rerun with a sane learning rate resumes from what is left and finishes.
  state = train_and_evaluate(toy_config(), str(workdir))
  assert int(state.step) == 60
  assert_all_checkpoints_good(workdir)


@pytest.mark.slow
def test_divergence_after_good_checkpoints_names_the_last_good_one(tmp_path, trained):
  """Resume a good run with an absurd learning rate: it stops, the good checkpoints stay."""
  workdir = copy_run(trained, tmp_path)
  before = saved_steps(workdir)
  with pytest.raises(NonFiniteLossError) as info:
    train_and_evaluate(toy_config(**{"training.n_iters": 100, "optim.lr": 1e38}), str(workdir),
                       allow_config_change=True)
  assert "The newest checkpoint (step 60) passed this check" in str(info.value)
  assert saved_steps(workdir) == before
  assert_all_checkpoints_good(workdir)


def test_steps_per_dispatch_change_nothing_but_the_dispatches(tmp_path, trained):
  """training.n_jitted_steps = 7 (chunks of 7 and 3 up to each checkpoint every 10 steps)
  saves the same checkpoints, logs the same steps and trains to the state of the one-step
  default (one compiled program each; XLA may fuse a loop's body differently, hence the
  float32 tolerance)."""
  workdir = tmp_path / "run7"
  state = train_and_evaluate(toy_config(**{"training.n_jitted_steps": 7}), str(workdir))
  assert saved_steps(workdir) == saved_steps(trained) == [20, 40, 60]
  assert int(state.step) == 60
  reference = restore(trained, 60)
  for a, b in zip(jax.tree.leaves(jax.device_get(state.params)), jax.tree.leaves(reference["params"])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)

  def logged(run):
    with open(run / "metrics.jsonl") as f:
      return [(r["step"], sorted(r)) for r in map(json.loads, f) if "loss" in r]
  assert logged(workdir) == logged(trained)
  assert [s for s, _ in logged(workdir)] == [10, 20, 30, 40, 50, 60]


def test_n_jitted_steps_must_be_positive(tmp_path):
  with pytest.raises(ConfigError, match="training.n_jitted_steps"):
    train_and_evaluate(toy_config(**{"training.n_jitted_steps": 0}), str(tmp_path / "run"))


def test_guard_rules():
  guard = DivergenceGuard(growth_limit=1e6, min_history=3)
  for loss in (5.0, 4.0, 6.0, 3.0):
    assert guard.problem(loss, 1.0) is None
  assert guard.problem(4.5e6, 1.0) is None  # < 1e6 x the median (4.5)
  assert "grew to" in guard.problem(1e8, 1.0)
  assert "gradient norm became inf" in guard.problem(1.0, float("inf"))
  assert "loss became nan" in guard.problem(float("nan"), 1.0)


# --------------------------------------------------------------- 3. two runs on one workdir

def test_second_lock_on_a_workdir_is_refused_and_names_the_holder(tmp_path):
  with workdir_lock(str(tmp_path)):
    with pytest.raises(WorkdirInUseError, match=f"pid {os.getpid()}.*choose another --workdir"):
      with workdir_lock(str(tmp_path)):
        pass
  with workdir_lock(str(tmp_path)):  # released on exit
    pass


def test_lock_left_by_a_dead_process_does_not_block(tmp_path):
  proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": int(proc.stdout), "host": os.uname().nodename,
                                                "started": "earlier", "command": "a dead run"}))
  with workdir_lock(str(tmp_path)):
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def _env() -> dict[str, str]:
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
  env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                              if not f.startswith("--xla_force_host_platform_device_count"))
  return env


CLI_ARGS = ["--config=configs/toy_2d.py:smoke", "--config.training.n_iters=400",
            "--config.training.snapshot_freq=200", "--config.training.snapshot_freq_for_preemption=10",
            "--config.training.log_freq=10", "--config.training.snapshot_sampling=False"]


def _start(workdir: Path, log: Path, *extra: str) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "-m", "scorejax.main", f"--workdir={workdir}",
                           *CLI_ARGS, *extra], cwd=REPO, env=_env(), stdout=open(log, "w"),
                          stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_steps(proc: subprocess.Popen, workdir: Path, log: Path, timeout: float = 240) -> None:
  end = time.time() + timeout
  while not saved_steps(workdir):
    if proc.poll() is not None:
      pytest.fail(f"the run ended early:\n{log.read_text()[-3000:]}")
    if time.time() > end:
      os.killpg(proc.pid, signal.SIGKILL)
      pytest.fail("no checkpoint appeared")
    time.sleep(0.2)


@pytest.mark.slow
def test_two_runs_on_one_workdir_the_second_is_refused_and_the_first_is_unaffected(tmp_path):
  workdir = tmp_path / "run"
  first = _start(workdir, tmp_path / "first.txt")
  try:
    _wait_for_steps(first, workdir, tmp_path / "first.txt")
    second = subprocess.run([sys.executable, "-m", "scorejax.main", f"--workdir={workdir}",
                             *CLI_ARGS, "--config.optim.lr=0.1"], cwd=REPO, env=_env(),
                            capture_output=True, text=True, timeout=240)
    assert second.returncode == 1, second.stderr[-3000:]
    assert f"in use by another training run (pid {first.pid}" in second.stderr, second.stderr[-3000:]
    assert first.wait(timeout=300) == 0, (tmp_path / "first.txt").read_text()[-3000:]
  finally:
    if first.poll() is None:
      os.killpg(first.pid, signal.SIGKILL)
  recorded = json.loads((workdir / "config.json").read_text())
  assert recorded["optim"]["lr"] == toy_config().optim.lr  # the first run's, not the second's
  assert saved_steps(workdir)[-1] == 400
  steps = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert steps == sorted(set(steps))  # one writer: no interleaved or duplicate rows


@pytest.mark.slow
def test_sigterm_saves_exits_75_and_the_rerun_leaves_one_metric_row_per_step(tmp_path):
  workdir = tmp_path / "run"
  proc = _start(workdir, tmp_path / "run.txt")
  _wait_for_steps(proc, workdir, tmp_path / "run.txt")
  os.kill(proc.pid, signal.SIGTERM)
  assert proc.wait(timeout=120) == PREEMPTED_EXIT_CODE == 75
  rerun = subprocess.run([sys.executable, "-m", "scorejax.main", f"--workdir={workdir}", *CLI_ARGS],
                         cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  steps = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert steps == sorted(set(steps)) and steps[-1] == 400


def test_resume_drops_metric_rows_logged_after_the_restored_checkpoint(trained, tmp_path):
  workdir = copy_run(trained, tmp_path)
  # The interrupted run of the report: rows up to 60 were logged, checkpoint 40 is the newest.
  shutil.rmtree(workdir / "checkpoints" / "60")
  train_and_evaluate(toy_config(), str(workdir))
  steps = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert steps == [10, 20, 30, 40, 50, 60]


# --------------------------------------------------------------- 4, 6. the config on resume

@pytest.mark.parametrize("field, value", [("model.nf", 64), ("training.sde", "vesde"),
                                          ("data.toy_name", "two_moons"),
                                          ("training.likelihood_weighting", True)])
def test_resume_with_a_changed_model_sde_data_or_loss_is_refused_and_the_record_kept(
    trained, tmp_path, field, value):
  workdir = copy_run(trained, tmp_path)
  record = (workdir / "config.json").read_text()
  listing = sorted(p.name for p in (workdir / "checkpoints").iterdir())
  with pytest.raises(ConfigMismatchError, match=f"config.{field}: .* -> {value!r}") as info:
    train_and_evaluate(toy_config(**{field: value, "training.n_iters": 80}), str(workdir),
                       allow_config_change=True)
  assert "another --workdir" in str(info.value)
  assert (workdir / "config.json").read_text() == record
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == listing


def test_resume_with_another_learning_rate_needs_the_flag(trained, tmp_path):
  workdir = copy_run(trained, tmp_path)
  with pytest.raises(ConfigMismatchError, match="config.optim.lr.*--allow_config_change"):
    train_and_evaluate(toy_config(**{"optim.lr": 1e-4, "training.n_iters": 70}), str(workdir))
  state = train_and_evaluate(toy_config(**{"optim.lr": 1e-4, "training.n_iters": 70}),
                             str(workdir), allow_config_change=True)
  assert int(state.step) == 70
  assert json.loads((workdir / "config.json").read_text())["optim"]["lr"] == 1e-4
  previous = json.loads((workdir / "config.before_step_60.json").read_text())
  assert previous["optim"]["lr"] == toy_config().optim.lr


def test_n_iters_at_or_below_the_restored_step_says_so(trained, tmp_path, caplog):
  workdir = copy_run(trained, tmp_path)
  with pytest.raises(ConfigError, match="n_iters=30 is below step 60"):
    train_and_evaluate(toy_config(**{"training.n_iters": 30}), str(workdir))
  with caplog.at_level(logging.WARNING):
    state = train_and_evaluate(toy_config(), str(workdir))
  assert int(state.step) == 60
  assert "already at step 60" in caplog.text


def test_classify_changes():
  old = {"model": {"nf": 32, "ema_rate": 0.99}, "training": {"n_iters": 10, "sde": "vpsde"},
         "optim": {"lr": 1e-3}}
  new = {"model": {"nf": 32, "ema_rate": 0.9}, "training": {"n_iters": 20, "sde": "vpsde"},
         "optim": {"lr": 1e-3}, "extra": 1}
  changes = classify_changes(old, new)
  assert changes["refused"] == []
  assert changes["needs_flag"] == [("model.ema_rate", 0.99, 0.9)]
  assert changes["harmless"] == [("training.n_iters", 10, 20)]
  assert changes["one_side"] == [("extra", "<absent>", 1)]
  # Where the learning rate decays to 0 at n_iters, the length shapes the continued training.
  for run in (old, new):
    run["optim"].update(lr_decay="cosine", decay_steps=None)
  assert ("training.n_iters", 10, 20) in classify_changes(old, new)["needs_flag"]
  old["optim"]["decay_steps"] = new["optim"]["decay_steps"] = 10  # a fixed decay: harmless again
  assert classify_changes(old, new)["harmless"] == [("training.n_iters", 10, 20)]


# --------------------------------------------------------------- full disk from orbax

def test_full_disk_raised_by_orbax_as_another_exception_is_reported_briefly(tmp_path, monkeypatch):
  tx = optim.make_optimizer(lr=1e-3)
  state = TrainState.create({"w": jnp.arange(3.0)}, tx)
  manager = checkpoint.make_manager(str(tmp_path), snapshot_freq=10)
  checkpoint.save(manager, 10, state.replace(step=jnp.int32(10)))

  def no_space(*args, **kwargs):
    try:
      raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as e:
      raise ValueError("tensorstore write failed") from e

  monkeypatch.setattr(manager, "save", no_space)
  with pytest.raises(OSError, match="No space left on device.*resumes from step 10") as info:
    checkpoint.save(manager, 20, state.replace(step=jnp.int32(20)))
  assert info.value.errno == errno.ENOSPC and info.value.__cause__ is None
