"""Controllable generation on the offline digits, judged by the quick-start test's DigitJudge.

Every model here comes from a cached run (tests/digits_model.py), and every sample
from the command line (`python -m scorejax.main --mode=sample --config.sampling.task=...`,
in a subprocess, as the README shows it):

* the unconditional quick-start model (`trained_digits_workdir()`, shared with the
  quick-start test; never trained here);
* the noise-conditional classifier (`--mode=train_classifier`, configs/digits.py's
  WRN-10-1, `classifier.n_iters` steps);
* a label-conditional model for classifier-free guidance: the quick-start command with
  `--config.model.num_classes=10` and label dropout, trained from scratch for 2000 steps
  (CONDITIONAL_ITERS, twice the quick start's).

Checks (issue: controllable generation): the judge labels >= 90% of class-guided
samples as the requested class, with classifier guidance and with classifier-free
guidance, against ~10% for unguided samples of the same requests; inpainting the
lower half of test digits gives the judge's label of the true digit on >= 80% and a
lower error to the truth (on the unknown half) than filling it with the training
mean. Measured numbers with the quick start's earlier recipe (2000 steps at a constant
learning rate, no corrector; docs/controllable.md, "The digits"): classifier guidance 0.94
(unguided 0.06), classifier-free guidance 1.00 (w = 3), inpainting 0.82 with MSE 0.041
against the mean's 0.064. With the current recipe all three pass (2026-11-26). All three checks run on request
(SCOREJAX_RUN_DIGITS_DEMOS=1; tests/conftest.py): together they cost more than the full
suite's 15-minute budget; the closed-form checks of the same methods (tests/test_controllable.py)
run in every suite. Cost on 2 cores: classifier training
~2 min, the label-conditional training as the quick start's (6-7 min quiet, 20 min
under load), each `--mode=sample` call 1-4 min (guided inpainting of 100 digits ~5).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import numpy as np
import pytest

from digits_model import trained_digits_workdir
from test_digits_quickstart import _judge

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES_PER_CLASS = 10      # 100 samples per guidance kind
CLASSIFIER_SCALE = 3.0      # classifier guidance scale (1: the exact posterior's)
FREE_SCALE = 3.0            # classifier-free guidance weight w
LABEL_DROPOUT = 0.2
# Twice the quick start's 1000 steps: at 1000 the label-conditional model's guided samples
# (w = 3) were judged the requested digit 0.85 of the time (bar 0.9); the class embedding
# and the null label share the budget the unconditional model has to itself.
CONDITIONAL_ITERS = 2000
NUM_INPAINT = 100           # test digits whose lower half is inpainted
CLASS_BAR = 0.9
UNGUIDED_MAX = 0.3
INPAINT_BAR = 0.8
# The library's default, reconstruction-guided replacement, at guidance scale 3 with the
# config's 200-level PC sampler (r_t^2 floored on the last steps, where g^2 dt / r_t^2 ~
# dt / t would exceed 2). Measured on the first 100 test digits (the earlier recipe's
# step-2000 model, Euler-Maruyama without a corrector): the judge agrees with the true digit
# on 0.82 (scale 2: 0.81, scale 1: 0.77; score_sde's 'replace': 0.52), MSE on the unknown
# half 0.041 vs the training mean's 0.064.
INPAINT_METHOD = "guided"
INPAINT_SCALE = 3.0


def _env():
  return {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one host device


@functools.lru_cache(maxsize=None)
def classifier_dir() -> str:
  return os.path.join(trained_digits_workdir(mode="train_classifier"), "classifier")


@functools.lru_cache(maxsize=None)
def conditional_workdir() -> str:
  """A label-conditional model trained from scratch with label dropout for CONDITIONAL_ITERS
  steps (the quick-start command with the label fields and that n_iters)."""
  return trained_digits_workdir((
      "--config.model.num_classes=10", f"--config.training.label_dropout={LABEL_DROPOUT}",
      f"--config.training.n_iters={CONDITIONAL_ITERS}", "--config.training.snapshot_sampling=False"))


def _sample(tmp_path, workdir: str, *overrides: str) -> np.ndarray:
  """`--mode=sample` with `overrides` on a read-only view of `workdir`; returns the `.npy`."""
  view = tmp_path / f"view{len(list(tmp_path.iterdir()))}"
  view.mkdir()
  os.symlink(os.path.join(workdir, "checkpoints"), view / "checkpoints")
  proc = subprocess.run(
      [sys.executable, "-m", "scorejax.main", "--config=configs/digits.py", f"--workdir={view}",
       "--mode=sample", *overrides],
      cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stderr[-4000:]
  out = [f for f in os.listdir(view / "samples" / "sample_mode")
         if f.endswith(".npy") and not f.endswith("_labels.npy")]
  assert len(out) == 1, out
  return np.load(view / "samples" / "sample_mode" / out[0])


def _class_accuracy(images: np.ndarray, labels: np.ndarray) -> float:
  judge = _judge(16)
  predicted = judge.clf.predict_proba(
      np.clip(images.reshape(len(images), -1), 0.0, 1.0)).argmax(1)
  return float(np.mean(predicted == labels))


_CLASS = ("--config.sampling.task=class", f"--config.sampling.samples_per_class={SAMPLES_PER_CLASS}")
_LABELS = np.repeat(np.arange(10), SAMPLES_PER_CLASS)


@pytest.mark.slow
def test_classifier_guidance_gives_the_requested_digits(tmp_path):
  x = _sample(tmp_path, trained_digits_workdir(), *_CLASS, "--config.sampling.guidance=classifier",
              f"--config.sampling.guidance_scale={CLASSIFIER_SCALE}",
              f"--config.sampling.classifier_workdir={classifier_dir()}")
  unguided = _sample(tmp_path, trained_digits_workdir(), *_CLASS, "--config.sampling.guidance=none")
  guided_acc, unguided_acc = _class_accuracy(x, _LABELS), _class_accuracy(unguided, _LABELS)
  print(f"classifier guidance (scale {CLASSIFIER_SCALE}): {guided_acc:.3f} of samples judged the "
        f"requested digit; unguided: {unguided_acc:.3f}")
  assert guided_acc >= CLASS_BAR, guided_acc
  assert unguided_acc <= UNGUIDED_MAX, unguided_acc


# Like the one above, the next two run on request (SCOREJAX_RUN_DIGITS_DEMOS=1,
# tests/conftest.py: 5-20 minutes each on 2 cores, a second digits training for the first);
# their measured numbers are in docs/controllable.md.


@pytest.mark.slow
def test_classifier_free_guidance_gives_the_requested_digits(tmp_path):
  """Measured: 1.00 of 100 samples judged the requested digit at w = 3, 0.95 at w = 0."""
  workdir = conditional_workdir()
  x = _sample(tmp_path, workdir, *_CLASS, "--config.model.num_classes=10",
              "--config.sampling.guidance=classifier_free",
              f"--config.sampling.guidance_scale={FREE_SCALE}")
  acc = _class_accuracy(x, _LABELS)
  print(f"classifier-free guidance (w = {FREE_SCALE}): {acc:.3f}")
  assert acc >= CLASS_BAR, acc


@pytest.mark.slow
def test_inpainting_lower_halves_keeps_the_digit(tmp_path):
  from scorejax.data import sources  # pylint: disable=import-outside-toplevel
  x = _sample(tmp_path, trained_digits_workdir(), "--config.sampling.task=inpaint",
              "--config.sampling.mask=half", f"--config.sampling.num_images={NUM_INPAINT}",
              f"--config.sampling.inpaint_method={INPAINT_METHOD}",
              f"--config.sampling.guidance_scale={INPAINT_SCALE}")
  judge = _judge(16)
  truth = judge.x_test[:NUM_INPAINT].reshape(-1, 16, 16, 1)
  assert x.shape == truth.shape
  np.testing.assert_allclose(x[:, :8], truth[:, :8], atol=1e-6)  # the known half is kept
  true_label = judge.clf.predict_proba(truth.reshape(NUM_INPAINT, -1)).argmax(1)
  agree = _class_accuracy(x, true_label)
  mean = sources.open_digits_source("train", 16).astype(np.float64).mean(0) / 255.0
  err = np.mean((x[:, 8:] - truth[:, 8:]) ** 2)
  err_mean = np.mean((mean[None, 8:] - truth[:, 8:]) ** 2)
  print(f"inpainting lower halves: judge agrees with the true digit's label on {agree:.3f}; "
        f"MSE on the unknown half {err:.4f} vs {err_mean:.4f} filling with the training mean")
  assert agree >= INPAINT_BAR, agree
  assert err < err_mean, (err, err_mean)
