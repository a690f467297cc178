"""One trained quick-start digits model shared by every slow test that needs one.

Training `configs/digits.py` takes 6-12 minutes on 2 cores, so the slow tests that
need a trained digits model (the quick start's sample quality and bits/dim, and the
demonstrations of inpainting, guidance and inverse problems on the digits) share one
run instead of training their own. `trained_digits_workdir()` trains it once, through
the command line exactly as the README's quick start does (`python -m scorejax.main
--config=configs/digits.py`), into a cache directory keyed by the contents of the
package and the configs, so a code change trains afresh and an unchanged tree reuses
the run. A file lock makes concurrent pytest workers (pytest-xdist) wait for the one
that trains; since a rerun of the same command resumes, an interrupted run is finished
rather than restarted.

`overrides` (e.g. `("--config.training.likelihood_weighting=True",)`) train a variant
in its own cache directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 1800


def _tree_digest(*dirs: str) -> str:
  digest = hashlib.sha256()
  for top in dirs:
    for base, subdirs, files in os.walk(os.path.join(ROOT, top)):
      subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
      for name in sorted(files):
        if name.endswith(".py"):
          path = os.path.join(base, name)
          digest.update(os.path.relpath(path, ROOT).encode())
          with open(path, "rb") as f:
            digest.update(f.read())
  return digest.hexdigest()[:16]


def cache_root() -> str:
  return os.environ.get("SCOREJAX_TEST_RUNS",
                        os.path.join(tempfile.gettempdir(), f"scorejax-test-runs-{os.getuid()}"))


def trained_digits_workdir(overrides: tuple[str, ...] = (), *,
                           config: str = "configs/digits.py") -> str:
  """The workdir of a finished `config` run with `overrides` (trained here if needed)."""
  key = hashlib.sha256("\0".join((config,) + tuple(overrides)).encode()).hexdigest()[:8]
  workdir = os.path.join(cache_root(), f"digits-{_tree_digest('scorejax', 'configs')}-{key}")
  os.makedirs(cache_root(), exist_ok=True)
  done = os.path.join(workdir, "TRAINED")
  with open(os.path.join(cache_root(), f"{os.path.basename(workdir)}.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not os.path.exists(done):
      env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one host device
      proc = subprocess.run(
          [sys.executable, "-m", "scorejax.main", f"--config={config}", f"--workdir={workdir}",
           *overrides],
          cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
      if proc.returncode != 0:
        raise RuntimeError(f"training {config} {overrides} failed:\n{proc.stderr[-4000:]}")
      open(done, "w").close()
  return workdir
