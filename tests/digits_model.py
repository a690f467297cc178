"""One trained quick-start digits model shared by every slow test that needs one.

Training `configs/digits.py` takes 2-6 minutes on 2 cores, so the slow tests that
need a trained digits model (the quick start's sample quality and bits/dim, and the
demonstrations of inpainting, guidance and inverse problems on the digits) share one
run instead of training their own. `trained_digits_workdir()` trains it once, through
the command line exactly as the README's quick start does (`python -m scorejax.main
--config=configs/digits.py`), into a cache directory keyed by the contents of the
code that training runs (`TRAINING_CODE`), so a change there trains afresh and
otherwise the run is reused (a change to the samplers does not retrain). A file lock makes concurrent pytest workers (pytest-xdist) wait for the one
that trains; since a rerun of the same command resumes, an interrupted run is finished
rather than restarted.

`overrides` (e.g. `("--config.training.likelihood_weighting=True",)`) train a variant
in its own cache directory, and `mode='train_classifier'` the noise-conditional
classifier of classifier guidance. While developing, `SCOREJAX_TEST_DIGITS_WORKDIR` may name
a finished run of the plain config to use instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 2700
# What a digits training run depends on (paths relative to the repository root).
TRAINING_CODE = ("configs", "scorejax/models", "scorejax/training", "scorejax/data",
                 "scorejax/losses.py", "scorejax/time_sampling.py", "scorejax/sde.py",
                 "scorejax/parameterization.py",
                 "scorejax/main.py")


def _files(top: str):
  path = os.path.join(ROOT, top)
  if os.path.isfile(path):
    yield path
  for base, subdirs, files in os.walk(path):
    subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
    yield from (os.path.join(base, n) for n in sorted(files) if n.endswith(".py"))


def _code_digest(paths) -> str:
  digest = hashlib.sha256()
  for top in paths:
    for path in _files(top):
      digest.update(os.path.relpath(path, ROOT).encode())
      with open(path, "rb") as f:
        digest.update(f.read())
  return digest.hexdigest()[:16]


def cache_root() -> str:
  return os.environ.get("SCOREJAX_TEST_RUNS",
                        os.path.join(tempfile.gettempdir(), f"scorejax-test-runs-{os.getuid()}"))


def trained_digits_workdir(overrides: tuple[str, ...] = (), *,
                           config: str = "configs/digits.py", mode: str = "train") -> str:
  """The workdir of a finished `config` run with `overrides` (trained here if needed).

  `mode`: 'train' (the score model) or 'train_classifier' (the noise-conditional
  classifier, then in `<workdir>/classifier`).
  """
  if (not overrides and config == "configs/digits.py" and mode == "train"
      and os.environ.get("SCOREJAX_TEST_DIGITS_WORKDIR")):
    return os.environ["SCOREJAX_TEST_DIGITS_WORKDIR"]
  key = hashlib.sha256("\0".join((config,) + tuple(overrides)
                                 + (() if mode == "train" else (mode,))).encode()).hexdigest()[:8]
  workdir = os.path.join(cache_root(), f"digits-{_code_digest(TRAINING_CODE)}-{key}")
  os.makedirs(cache_root(), exist_ok=True)
  done = os.path.join(workdir, "TRAINED")
  with open(os.path.join(cache_root(), f"{os.path.basename(workdir)}.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not os.path.exists(done):
      env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one host device
      proc = subprocess.run(
          [sys.executable, "-m", "scorejax.main", f"--config={config}", f"--workdir={workdir}",
           f"--mode={mode}", *overrides],
          cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
      if proc.returncode != 0:
        raise RuntimeError(f"training {config} {overrides} failed:\n{proc.stderr[-4000:]}")
      open(done, "w").close()
  return workdir
