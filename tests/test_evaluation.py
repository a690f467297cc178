"""`--mode=eval` (scorejax.evaluation.loop), reference statistics
(scorejax.evaluation.reference_stats, `--mode=fid_stats`) and the offline Fréchet
distance in digits-classifier feature space.

A tiny DIGITS setup: 8x8 digits, a one-block MLP score model trained for 2 steps, PC
sampling with 10 reverse-diffusion steps, 3 sampling rounds of 16.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from scorejax.data import sources
from scorejax.evaluation import loop as evaluate_lib
from scorejax.evaluation import reference_stats
from scorejax.evaluation.metrics import inception
from scorejax.evaluation.metrics.fid import feature_statistics, frechet_distance
from scorejax.evaluation.metrics.inception_score import inception_score
from scorejax.evaluation.metrics.kid import kernel_inception_distance

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCEPTION_FIXTURES = "/work/shared/fixtures/inception"
# The 2-step model's samples are far from the digits in (synthetic) Inception features: their
# FID was 47x the trace of the reference covariance (8 test digits) when measured.
FID_MARGIN = 1.0

# The tiny config as a config file (for the CLI tests) and as a function (in-process).
CONFIG_FILE = textwrap.dedent('''\
    from configs import toy_2d

    def get_config(arg=""):
      config = toy_2d.get_config("smoke")
      config.data.dataset = "DIGITS"
      config.data.image_size = 8
      config.data.num_channels = 1
      config.model.nf = 32
      config.model.num_layers = 1
      config.model.num_scales = 10           # 10 reverse-diffusion steps
      config.training.n_iters = 2
      config.training.snapshot_freq = 2
      config.training.snapshot_freq_for_preemption = 2
      config.training.snapshot_sampling = False
      config.training.batch_size = 16
      config.sampling.method = "pc"
      config.sampling.corrector = "none"
      config.sampling.noise_removal = True
      e = config.eval
      e.batch_size = 16
      e.num_samples = 48                     # 3 rounds of 16
      e.enable_sampling = True
      e.enable_loss = True
      e.enable_bpd = False
      e.bpd_dataset = "test"
      e.feature_kinds = "digits_classifier"
      e.stats_path = ""
      e.inception_weights = ""
      e.cache_dir = ""
      return config
    ''')


def _load_config(tmp_dir, cache_dir):
  path = os.path.join(tmp_dir, "tiny_digits.py")
  with open(path, "w") as f:
    f.write(CONFIG_FILE)
  namespace = {}
  sys.path.insert(0, REPO)
  exec(compile(CONFIG_FILE, path, "exec"), namespace)  # noqa: S102
  config = namespace["get_config"]()
  config.eval.cache_dir = str(cache_dir)
  return config, path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """(config, config file, trained workdir, classifier cache dir); no Inception weights."""
  from scorejax.training import train_and_evaluate
  root = tmp_path_factory.mktemp("evaluate")
  cache = root / "cache"
  config, path = _load_config(str(root), cache)
  workdir = str(root / "trained")
  old = os.environ.pop(inception.WEIGHTS_ENV, None)
  train_and_evaluate(config, workdir)
  yield config, path, workdir, str(cache)
  if old is not None:
    os.environ[inception.WEIGHTS_ENV] = old


def _copy_run(workdir, dst):
  """A fresh workdir holding only the trained checkpoints."""
  shutil.copytree(os.path.join(workdir, "checkpoints"), os.path.join(dst, "checkpoints"))
  return str(dst)


def test_eval_resumes_at_the_first_missing_round(setup, tmp_path):
  config, _, workdir, _ = setup
  full = evaluate_lib.evaluate(config, _copy_run(workdir, tmp_path / "full"))[2]
  assert full["num_samples"] == 48 and np.isfinite(full["fd_digits_classifier"])
  assert "fid" not in full  # the offline metric is never reported as FID

  interrupted = _copy_run(workdir, tmp_path / "interrupted")

  def stop_after_round_1(step, k):
    if k == 1:
      raise evaluate_lib.EvaluationInterrupted("simulated preemption")

  with pytest.raises(evaluate_lib.EvaluationInterrupted):
    evaluate_lib.evaluate(config, interrupted, round_callback=stop_after_round_1)
  rounds = os.path.join(interrupted, "eval", "ckpt_2")
  assert sorted(f for f in os.listdir(rounds) if f.startswith("round_")) == ["round_0.npz", "round_1.npz"]
  assert not os.path.exists(os.path.join(interrupted, "eval", "ckpt_2.json"))
  mtimes = {f: os.stat(os.path.join(rounds, f)).st_mtime_ns for f in ("round_0.npz", "round_1.npz")}

  sampled = []
  resumed = evaluate_lib.evaluate(config, interrupted, round_callback=lambda s, k: sampled.append(k))[2]
  assert sampled == [2]  # only the missing round was sampled
  assert {f: os.stat(os.path.join(rounds, f)).st_mtime_ns for f in mtimes} == mtimes
  for k in range(3):
    with np.load(os.path.join(rounds, f"round_{k}.npz")) as a, \
         np.load(os.path.join(tmp_path, "full", "eval", "ckpt_2", f"round_{k}.npz")) as b:
      np.testing.assert_array_equal(a["samples"], b["samples"])
  assert resumed["fd_digits_classifier"] == full["fd_digits_classifier"]
  # The reported distance is that of the 48 stored sample features to the reference.
  feats = []
  for k in range(3):
    with np.load(os.path.join(rounds, f"round_{k}.npz")) as r:
      feats.append(r["digits_classifier_features"])
  ref = reference_stats.load_stats(full["reference"]["digits_classifier"])
  assert full["fd_digits_classifier"] == pytest.approx(
      frechet_distance(*feature_statistics(np.concatenate(feats)), ref["mu"], ref["sigma"]), rel=1e-9)
  assert resumed["eval_loss"] == full["eval_loss"]

  # A third run finds the finished checkpoint and recomputes nothing.
  again = evaluate_lib.evaluate(config, interrupted, round_callback=lambda s, k: sampled.append(k))[2]
  assert sampled == [2] and again == resumed


def test_offline_fd_small_for_real_digits_large_for_noise(setup):
  _, _, _, cache = setup
  extractor = reference_stats.make_extractor("digits_classifier", image_size=8, cache_dir=cache)
  train_feats, _ = extractor(sources.open_digits_source("train", 8))
  test_feats, test_logits = extractor(sources.open_digits_source("test", 8))
  ref = feature_statistics(train_feats)
  fd_real = frechet_distance(*feature_statistics(test_feats), *ref)
  noise = np.random.default_rng(0).integers(0, 256, (297, 8, 8, 1), dtype=np.uint8)
  fd_noise = frechet_distance(*feature_statistics(extractor(noise)[0]), *ref)
  assert fd_real < 0.05 * fd_noise, (fd_real, fd_noise)
  # The features come from a classifier that works: labels match the split order.
  from scorejax.evaluation.metrics import digits_classifier
  accuracy = np.mean(np.argmax(test_logits, -1) == digits_classifier.digits_labels()["test"])
  assert accuracy > 0.9


def test_missing_inception_weights_skip_fid_with_instructions(setup, tmp_path):
  config, _, workdir, _ = setup
  config = config.copy_and_resolve_references()
  config.eval.feature_kinds = "inception"
  config.eval.num_samples = 16
  config.eval.enable_loss = False
  assert not os.environ.get(inception.WEIGHTS_ENV)
  result = evaluate_lib.evaluate(config, _copy_run(workdir, tmp_path / "run"))[2]
  for key in ("fid", "inception_score", "kid", "fd_digits_classifier"):
    assert key not in result
  message = result["skipped"]["inception"]
  assert "FID/IS/KID skipped" in message and inception.WEIGHTS_ENV in message
  assert inception.WEIGHTS_FILENAME in message
  assert os.path.isfile(os.path.join(tmp_path, "run", "eval", "ckpt_2", "round_0.npz"))  # samples kept
  with pytest.raises(reference_stats.InceptionWeightsUnavailable, match=inception.WEIGHTS_ENV):
    reference_stats.make_extractor("inception", inception_weights=config.eval.inception_weights)


@pytest.mark.slow
def test_fid_stats_and_eval_with_synthetic_inception_weights(setup, tmp_path):
  """The Inception path end to end, on pytorch-fid-shaped synthetic weights (in-process,
  8 images per batch everywhere so that one compilation serves both)."""
  config, _, workdir, _ = setup
  weights = str(tmp_path / "inception.npz")
  subprocess.run([sys.executable, os.path.join(INCEPTION_FIXTURES, "make_weights.py"),
                  os.path.join(INCEPTION_FIXTURES, "inception_keys.json"), weights], check=True)
  stats_path = str(tmp_path / "stats" / "digits_test.npz")
  reference_stats.compute_reference_stats(config, "test", stats_path, kind="inception",
                                    inception_weights=weights, batch_size=8, max_examples=8)
  stats = reference_stats.load_stats(stats_path)
  assert stats["mu"].shape == (2048,) and stats["sigma"].shape == (2048, 2048)
  assert stats["features"].shape == (8, 2048) and stats["logits"].shape == (8, 1008)
  assert str(stats["kind"]) == "inception" and int(stats["num_examples"]) == 8
  # The statistics are those of the stored features, which depend on the image.
  mu, sigma = feature_statistics(stats["features"])
  np.testing.assert_allclose(stats["mu"], mu, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(stats["sigma"], sigma, rtol=1e-6, atol=1e-9)
  assert np.ptp(stats["features"], axis=0).max() > 0

  config = config.copy_and_resolve_references()
  e = config.eval
  e.feature_kinds, e.num_samples, e.batch_size, e.enable_loss = "inception", 8, 8, False
  e.stats_path, e.inception_weights, e.inception_batch_size = stats_path, weights, 8
  run = _copy_run(workdir, tmp_path / "run")
  result = evaluate_lib.evaluate(config, run)[2]
  assert np.isfinite(result["inception_score"]) and np.isfinite(result["kid"])
  # FID, IS and KID are those of the stored sample features against the reference: the
  # reference against itself is at distance ~0, the samples of a 2-step model are far.
  with np.load(os.path.join(run, "eval", "ckpt_2", "round_0.npz")) as r:
    feats, logits = r["inception_features"], r["inception_logits"]
  assert result["fid"] == pytest.approx(
      frechet_distance(*feature_statistics(feats), stats["mu"], stats["sigma"]), rel=1e-9)
  assert result["inception_score"] == pytest.approx(inception_score(logits, splits=8)[0], rel=1e-9)
  assert result["kid"] == pytest.approx(kernel_inception_distance(feats, stats["features"]), rel=1e-9)
  self_fid = frechet_distance(stats["mu"], stats["sigma"], stats["mu"], stats["sigma"])
  assert abs(self_fid) < 1e-4 * np.trace(stats["sigma"]), self_fid  # sqrtm of a rank-7 matrix
  assert result["fid"] > FID_MARGIN * np.trace(stats["sigma"]), (result["fid"], np.trace(stats["sigma"]))
  assert "skipped" not in result and "fd_digits_classifier" not in result
  with open(os.path.join(run, "eval", "ckpt_2.json")) as f:
    assert json.load(f)["fid"] == result["fid"]
  with np.load(os.path.join(run, "eval", "ckpt_2", "round_0.npz")) as r:
    assert r["samples"].dtype == np.uint8 and r["inception_features"].shape == (8, 2048)


def test_cli_fid_stats_and_eval_mode(setup, tmp_path):
  """`python -m scorejax.main --mode=fid_stats` and `--mode=eval` (digits features)."""
  _, config_path, workdir, cache = setup
  env = dict(os.environ, PYTHONPATH=REPO)
  stats_path = str(tmp_path / "digits_train.npz")
  out = subprocess.run([sys.executable, "-m", "scorejax.main", "--mode=fid_stats",
                        f"--config={config_path}", "--split=train", "--features=digits_classifier",
                        f"--cache_dir={cache}", f"--out={stats_path}"], check=True, cwd=REPO, env=env,
                       capture_output=True, text=True)
  assert json.loads(out.stdout.strip().splitlines()[-1]) == {
      "out": stats_path, "kind": "digits_classifier", "num_examples": 1500, "feature_dim": 64}
  run = _copy_run(workdir, tmp_path / "run")
  subprocess.run([sys.executable, "-m", "scorejax.main", f"--config={config_path}",
                  f"--workdir={run}", "--mode=eval", "--config.eval.num_samples=16",
                  "--config.eval.enable_loss=False", f"--config.eval.cache_dir={cache}"],
                 check=True, cwd=REPO, env=env, capture_output=True, text=True)
  with open(os.path.join(run, "eval", "ckpt_2.json")) as f:
    result = json.load(f)
  # The reference computed by --mode=eval equals the one --mode=fid_stats wrote.
  ref = reference_stats.load_stats(result["reference"]["digits_classifier"])
  np.testing.assert_allclose(ref["mu"], reference_stats.load_stats(stats_path)["mu"], rtol=1e-6)
  assert np.isfinite(result["fd_digits_classifier"]) and "fid" not in result
