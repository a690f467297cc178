"""Fault injection on the command line and the evaluation entry points (issue 15): each
test reproduces one case that used to fail or mislead and asserts the new behaviour.

* None-default config fields accept overrides (`--config.eval.begin_ckpt=5`,
  `--config.eval.checkpoint_steps=[999]`, `--config.eval.bpd_max_examples=None`, ...),
  parsed by the real CLI parser; a value of the wrong type names the field.
* Read-only checkpoints can be sampled, evaluated and measured (`--mode=sample`,
  `--mode=likelihood`, `--mode=eval` only read them).
* `--mode=sample` writes its own files, never over the training snapshot of that step.
* The long modes show progress bars (rounds with NFE, bits/dim and feature batches,
  checkpoints).
* `eval.batch_size` not divisible by the device count fails up front, in the library
  entry, naming the field, the device count and the nearest valid values.

Subprocesses run on CPU (one device, or two fake ones for the batch-size case). The
read-only case drops root's CAP_DAC_OVERRIDE with `setpriv` when run as root, since
root writes through `chmod a-w`. The trained-run case is `slow`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240  # seconds for any one subprocess (a toy run takes ~5-15 s)

# The toy run of the read-only case: 20 steps, checkpoints (and snapshot grids) at 10
# and 20, a 100-step reverse-diffusion sampler (fast) for the grids and sample mode.
TOY_ARGS = ["--config=configs/toy_2d.py:smoke", "--config.training.snapshot_sample_count=16",
            "--config.sampling.method=pc", "--config.sampling.corrector=none",
            "--config.model.num_scales=100"]


def _env(**extra) -> dict[str, str]:
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")}
  xla_flags = [f for f in env.get("XLA_FLAGS", "").split()
               if not f.startswith("--xla_force_host_platform_device_count")]
  env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", XLA_FLAGS=" ".join(xla_flags),
             PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
  env.update(extra)
  return env


def _run(args: list[str], *, env=None, prefix=()) -> tuple[int, str]:
  """Runs a command from the repository root: (exit code, stdout + stderr)."""
  p = subprocess.run([*prefix, *args], cwd=REPO, env=env or _env(), stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT, check=False)
  return p.returncode, p.stdout


def _ok(result: tuple[int, str]) -> str:
  rc, out = result
  assert rc == 0, f"exit code {rc}; output:\n{out[-4000:]}"
  return out


def _cli(workdir: Path, *args: str, prefix=()) -> tuple[int, str]:
  return _run([sys.executable, "-m", "scorejax.main", f"--workdir={workdir}", *args], prefix=prefix)


def _listing(root: Path) -> dict[str, tuple[int, int]]:
  return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
          for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- None-default fields

# The CLI's own parser (scorejax.main), then the settings --mode=eval reads from the result.
PARSE = textwrap.dedent("""\
    import dataclasses, json, sys
    from scorejax import main
    from scorejax.evaluation import loop
    main._parse_flags(sys.argv)
    config = main._CONFIG.value
    settings = loop.EvalSettings.from_config(config)
    print("SETTINGS " + json.dumps({k: v for k, v in dataclasses.asdict(settings).items()
                                    if k != "sampling"}))
    print("CONFIG " + json.dumps(config.eval.to_dict()))
    """)


def _parsed(*args: str) -> tuple[dict, dict]:
  out = _ok(_run([sys.executable, "-c", PARSE, *args]))
  lines = dict(line.split(" ", 1) for line in out.splitlines()
               if line.startswith(("SETTINGS ", "CONFIG ")))
  assert set(lines) == {"SETTINGS", "CONFIG"}, out[-4000:]
  return json.loads(lines["SETTINGS"]), json.loads(lines["CONFIG"])


def test_none_default_fields_take_values_from_the_command_line():
  """digits.py's None defaults take values (and its typed bpd_max_examples takes None)."""
  settings, config = _parsed(
      "--config=configs/digits.py", "--config.eval.begin_ckpt=5", "--config.eval.end_ckpt=7",
      "--config.eval.checkpoint_steps=[999]", "--config.eval.bpd_max_examples=None",
      "--config.eval.stats_path=/data/stats/inception.npz",
      "--config.eval.digits_stats_path=/data/stats/digits.npz",
      "--config.eval.feature_kinds=inception,digits_classifier")
  assert (settings["begin_ckpt"], settings["end_ckpt"]) == (5, 7)
  assert settings["checkpoint_steps"] == [999]
  assert settings["bpd_max_examples"] is None and config["bpd_max_examples"] is None
  assert settings["stats_path"] == "/data/stats/inception.npz"
  assert settings["digits_stats_path"] == "/data/stats/digits.npz"
  assert settings["feature_kinds"] == ["inception", "digits_classifier"]


def test_typed_fields_take_none_and_new_optional_fields_take_values():
  """The CIFAR-10 family: begin/end_ckpt (ints) take None, the optional eval fields
  (None by default, absent before) take values, bpd_max_examples goes from None to an int."""
  settings, config = _parsed(
      "--config=configs/ve_cifar10.py:smoke", "--config.eval.begin_ckpt=None",
      "--config.eval.end_ckpt=None", "--config.eval.checkpoint_steps=[5,10]",
      "--config.eval.bpd_max_examples=100", "--config.eval.inception_weights=/w/pt_inception.pth")
  assert (settings["begin_ckpt"], settings["end_ckpt"]) == (None, None)
  assert (config["begin_ckpt"], config["end_ckpt"]) == (None, None)
  assert settings["checkpoint_steps"] == [5, 10]
  assert settings["bpd_max_examples"] == 100
  assert settings["inception_weights"] == "/w/pt_inception.pth"


def test_an_optional_field_of_the_wrong_type_names_the_field():
  from configs import digits
  from scorejax.evaluation import loop

  for field, value, fix in [("begin_ckpt", "five", "--config.eval.begin_ckpt=5"),
                            ("bpd_max_examples", 2.5, "--config.eval.bpd_max_examples=None"),
                            ("checkpoint_steps", "[999]", "--config.eval.checkpoint_steps=[")]:
    config = digits.get_config()
    config.eval[field] = value
    with pytest.raises(ValueError) as e:
      loop.EvalSettings.from_config(config)
    assert f"config.eval.{field}={value!r}" in str(e.value) and fix in str(e.value), str(e.value)


# ----------------------------------------------------------------------------- batch size vs devices

EVALUATE = textwrap.dedent("""\
    import sys
    from configs import toy_2d
    from scorejax.evaluation import loop
    config = toy_2d.get_config("smoke")
    config.eval.batch_size = int(sys.argv[2])
    try:
      loop.evaluate(config, sys.argv[1])
    except Exception as e:
      print(f"RAISED {type(e).__name__}: {e}")
    """)


def test_eval_batch_size_not_divisible_by_the_devices_fails_up_front(tmp_path):
  """The library entry (`evaluation.loop.evaluate`) on two devices with eval.batch_size=511:
  a ValueError naming the field, the device count and 510 / 512, before any work — here
  before even noticing that the workdir holds no checkpoint."""
  workdir = tmp_path / "run"
  out = _ok(_run([sys.executable, "-c", EVALUATE, str(workdir), "511"],
                 env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2")))
  raised = [line for line in out.splitlines() if line.startswith("RAISED ")]
  assert raised, out[-4000:]
  message = raised[-1]
  assert message.startswith("RAISED ValueError: config.eval.batch_size=511"), message
  assert "device count (2)" in message, message
  assert "--config.eval.batch_size=510" in message and "--config.eval.batch_size=512" in message
  assert not (workdir / "eval").exists() and not (workdir / "checkpoints").exists()


def test_check_batch_size_names_the_nearest_valid_values():
  from scorejax.evaluation import loop

  loop.check_batch_size(512, 8)
  for batch_size, devices, valid in [(10, 4, ("8", "12")), (3, 8, ("8",)), (0, 2, ("2",))]:
    with pytest.raises(ValueError) as e:
      loop.check_batch_size(batch_size, devices)
    named = [w.split("=")[1].rstrip(".") for w in str(e.value).split()
             if w.startswith("--config.eval.batch_size=")]
    assert tuple(named) == valid, str(e.value)
    assert f"device count ({devices})" in str(e.value)


# ----------------------------------------------------------------------------- sample mode's files

def test_sample_mode_never_writes_over_the_training_snapshot(tmp_path):
  """`write_samples` (what --mode=sample runs) at a step whose training snapshot exists."""
  from configs import toy_2d
  from scorejax.evaluation import samples
  from scorejax.training import setup

  config = toy_2d.get_config("smoke")
  config.training.snapshot_sample_count = 8
  config.sampling.method, config.sampling.corrector, config.model.num_scales = "pc", "none", 10
  c, s = setup.build_components(config), setup.SampleSettings.from_config(config)
  state = setup.init_state(c, jax.random.key(0))
  snapshots = tmp_path / "samples"
  snapshots.mkdir()
  for suffix in (".png", ".npy", "_score_t0.05.png", "_score_t0.3.png"):
    (snapshots / f"step_00000007{suffix}").write_bytes(b"the training snapshot")
  before = _listing(snapshots)

  path = samples.write_samples(c, s, state, 7, str(tmp_path))
  name = "step_00000007_pc_reverse_diffusion_none"
  assert path == str(snapshots / "sample_mode" / f"{name}.png")
  assert {k: v for k, v in _listing(snapshots).items() if not k.startswith("sample_mode")} == before
  assert all((snapshots / f).read_bytes() == b"the training snapshot" for f in before)
  assert sorted(p.name for p in (snapshots / "sample_mode").iterdir()) == [
      f"{name}.npy", f"{name}.png", f"{name}_score_t0.05.png", f"{name}_score_t0.3.png"]
  assert np.load(snapshots / "sample_mode" / f"{name}.npy").shape == (8, 2)


# ----------------------------------------------------------------------------- progress

def test_feature_batches_show_a_progress_bar(capsys):
  """Inception / digits-classifier features of a round go in batches, counted on stderr."""
  from scorejax.evaluation import reference_stats

  fn = jax.jit(lambda params, x: (x.reshape(x.shape[0], -1).astype(np.float32) * params,
                                  x.reshape(x.shape[0], -1)[:, :2].astype(np.float32)))
  extractor = reference_stats.FeatureExtractor("toy_kind", fn, np.float32(2.0), batch_size=2)
  images = np.arange(5 * 2 * 2 * 1, dtype=np.uint8).reshape(5, 2, 2, 1)
  feats, _ = extractor(images)
  np.testing.assert_array_equal(feats, images.reshape(5, -1) * 2.0)
  err = capsys.readouterr().err
  assert "toy_kind features" in err and "3/3" in err, err


# ----------------------------------------------------------------------------- read-only checkpoints

def _read_only_prefix() -> tuple[str, ...]:
  """A command prefix under which `chmod a-w` is enforced (root ignores it otherwise)."""
  if os.geteuid() != 0:
    return ()
  setpriv = shutil.which("setpriv")
  if setpriv is None:
    pytest.skip("running as root without setpriv: a read-only directory cannot be enforced")
  return (setpriv, "--bounding-set=-dac_override", "--")


def _set_writable(root: Path, writable: bool) -> None:
  for path in [root, *root.rglob("*")]:
    mode = path.stat().st_mode
    path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A finished toy run: checkpoints and snapshot grids at steps 10 and 20."""
  workdir = tmp_path_factory.mktemp("faults_cli") / "run"
  _ok(_cli(workdir, *TOY_ARGS))
  assert (workdir / "samples" / "step_00000020.npy").is_file()
  return workdir


@pytest.mark.slow
def test_read_only_checkpoints_are_sampled_measured_and_evaluated(trained, tmp_path):
  """chmod -R a-w checkpoints/, then --mode=sample, --mode=likelihood and --mode=eval: all
  succeed, the checkpoints are unchanged, sample mode's grid is the snapshot's draw in a
  file of its own, and likelihood and eval show their progress bars."""
  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)
  checkpoints = workdir / "checkpoints"
  before = _listing(checkpoints)
  snapshots = {k: v for k, v in _listing(workdir / "samples").items()}
  prefix = _read_only_prefix()
  _set_writable(checkpoints, False)
  try:
    rc, _ = _run(["touch", str(checkpoints / "probe")], prefix=prefix)
    assert rc != 0, "the checkpoints directory is writable: the test would prove nothing"
    sample = _ok(_cli(workdir, "--mode=sample", *TOY_ARGS, prefix=prefix))
    likelihood = _ok(_cli(workdir, "--mode=likelihood", "--config=configs/toy_2d.py:smoke",
                          "--max_examples=64", "--batch_size=32", "--divergence=exact",
                          "--rtol=1e-3", "--atol=1e-3", "--bound_n_t=8", prefix=prefix))
    evaluation = _ok(_cli(workdir, "--mode=eval", "--config=configs/toy_2d.py:smoke",
                          "--config.eval.batch_size=2000", prefix=prefix))
  finally:
    _set_writable(checkpoints, True)
  assert _listing(checkpoints) == before

  name = "step_00000020_pc_reverse_diffusion_none"
  grid = workdir / "samples" / "sample_mode" / f"{name}.png"
  assert f"samples written to {grid}" in sample, sample[-4000:]
  after = _listing(workdir / "samples")
  assert {k: v for k, v in after.items() if not k.startswith("sample_mode")} == snapshots
  np.testing.assert_allclose(np.load(grid.with_suffix(".npy")),
                             np.load(workdir / "samples" / "step_00000020.npy"), rtol=1e-5, atol=1e-5)

  result = json.loads((workdir / "likelihood_test_step20.json").read_text())
  assert result["num_examples"] == 64 and np.isfinite(result["bpd"])
  assert "bits/dim (test)" in likelihood and "2/2" in likelihood and "nfe=" in likelihood, likelihood
  assert {p.name for p in (workdir / "eval").iterdir()} >= {"ckpt_10.json", "ckpt_20.json"}
  assert "eval checkpoints" in evaluation and "2/2" in evaluation, evaluation[-4000:]
  assert "eval loss" in evaluation and "0/5 " in evaluation, evaluation[-4000:]  # nested: cleared
