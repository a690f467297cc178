"""`--mode=eval`: evaluate a run's checkpoints — eval loss, bits/dim, samples, FID/IS/KID.

    python -m scorejax.main --config=configs/ve_cifar10.py --workdir=runs/ve --mode=eval \
        --config.eval.enable_sampling=True --config.eval.inception_weights=pt_inception.pth
    python -m scorejax.main --config=configs/digits.py --workdir=runs/digits --mode=eval

Which checkpoints (score_sde's convention): `eval.begin_ckpt`..`eval.end_ckpt` count
snapshots, i.e. the steps `k * training.snapshot_freq` for k in that inclusive range;
`eval.checkpoint_steps` (a list of real steps) overrides it; without either (or with
begin_ckpt = None) every checkpoint kept in `workdir/checkpoints` is evaluated. A
requested step with no checkpoint is skipped with a warning. From the command line:
`--config.eval.begin_ckpt=5 --config.eval.end_ckpt=7`, `--config.eval.checkpoint_steps=[999]`,
`--config.eval.begin_ckpt=None` (these fields may be None: `configs.blocks.optional`).
The checkpoints are only read (`workdir/checkpoints` may be read-only); `eval.batch_size`
is a global batch and must be a multiple of the device count (checked before any work).

Per checkpoint step S, everything is written under `workdir/eval/`:

* `eval.enable_loss`: the mean loss of the EMA parameters over the test split
  (`eval.batch_size` per batch, remainder dropped) -> `ckpt_S/loss.json`;
* `eval.enable_bpd`: bits/dim by `scorejax.evaluation.bpd.evaluate_bpd` on
  `eval.bpd_dataset` with `eval.bpd_num_repeats` dequantization draws (default 1)
  -> `ckpt_S/bpd.json`;
* `eval.enable_sampling`: `eval.num_samples` samples in rounds of `eval.batch_size`
  (one jitted sampler over the global batch, sharded over every device and host;
  round k's key is fold_in(fold_in(fold_in(key(seed), tag), S), k)), each saved with
  its features as `ckpt_S/round_k.npz` (uint8 `samples` as score_sde quantizes them,
  clip(x * 255, 0, 255) truncated; `<kind>_features`, `<kind>_logits`). Then the
  metrics against reference statistics of the data:
  - 'inception' features (default for every image dataset but DIGITS): `fid`,
    `inception_score` (+ `_std`, 10 splits) and `kid` (when the reference stores its
    features). Needs pytorch-fid's FID Inception weights (`eval.inception_weights` or
    $SCOREJAX_INCEPTION_WEIGHTS); without them these metrics are skipped with a
    message saying how to get the weights — never replaced by another number.
    Reference: `eval.stats_path` (from `--mode=fid_stats`) or, if unset,
    `eval/reference_inception_<dataset>_<split>.npz`, computed on first use from
    `eval.stats_split` (default 'train', as score_sde's CIFAR-10 statistics).
  - 'digits_classifier' features (default for DIGITS): `fd_digits_classifier`, the
    Fréchet distance in the feature space of a small classifier trained on the
    DIGITS train split (`evaluation.metrics.digits_classifier`). It is not FID and is
    comparable only with itself. Reference: `eval.digits_stats_path` or
    `eval/reference_digits_classifier_DIGITS_<split>.npz` (computed on first use).
  `eval.feature_kinds` (e.g. 'inception,digits_classifier') overrides the choice.
* the results -> `ckpt_S.json` and TensorBoard scalars / JSONL in `workdir/eval/`.

Resuming (score_sde's eval meta-state, here the files themselves): rerunning the
same command skips every checkpoint whose `ckpt_S.json` records the same request,
reuses `loss.json` / `bpd.json`, and resumes sampling at the first missing round;
every file is written atomically (a temporary file, then `os.replace`), so a
preempted run leaves no partial file. Round k's samples depend only on (seed, S, k),
so a resumed evaluation gives exactly the numbers of an uninterrupted one. With
several processes, `workdir` must be a shared file system (as for checkpoints);
process 0 writes.

`evaluate(config, workdir)` is the config edge: it reads `EvalSettings`, the
`Components` and the data once; the functions below take those.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from scorejax import data
from scorejax.evaluation import bpd, progress, reference_stats
from scorejax.evaluation.metrics.fid import feature_statistics, frechet_distance
from scorejax.evaluation.metrics.inception_score import inception_score
from scorejax.evaluation.metrics.kid import kernel_inception_distance
from scorejax.report.writer import MetricsWriter
from scorejax.sampling import get_sampling_fn
from scorejax.training import checkpoint, parallel, setup
from scorejax.training.setup import Components
from scorejax.training.state import TrainState

log = logging.getLogger(__name__)

_SAMPLE_TAG, _LOSS_TAG = 1, 2  # fold_in tags of the eval base key, one per purpose


class EvaluationInterrupted(RuntimeError):
  """Raised by a `round_callback` to stop an evaluation (tests simulate preemption with it)."""


# ------------------------------------------------------------------------------ small helpers

def _atomic_write_json(path: str, obj: Any) -> None:
  if jax.process_index() != 0:
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def _atomic_savez(path: str, **arrays) -> None:
  if jax.process_index() != 0:
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "wb") as f:  # a file object: np.savez would append '.npz' to a name
    np.savez(f, **arrays)
  os.replace(tmp, path)


def _read_json(path: str) -> dict | None:
  try:
    with open(path) as f:
      return json.load(f)
  except (FileNotFoundError, json.JSONDecodeError):
    return None


def _sync(name: str) -> None:
  """All processes wait here (after process 0 wrote a file the others will read)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


# ------------------------------------------------------------------------------ configuration

def feature_kinds(kinds, dataset: str) -> tuple[str, ...]:
  """Which feature spaces the sample metrics use: `kinds` (eval.feature_kinds, a list or a
  comma-separated string), or by default by `dataset`."""
  if kinds is None:
    if dataset == "TOY2D":
      return ()
    return ("digits_classifier",) if dataset == "DIGITS" else ("inception",)
  if isinstance(kinds, str):
    kinds = [k.strip() for k in kinds.split(",") if k.strip()]
  for k in kinds:
    if k not in reference_stats.FEATURE_KINDS:
      raise ValueError(f"config.eval.feature_kinds has {k!r}; valid: {reference_stats.FEATURE_KINDS}")
  return tuple(kinds)


def _is_int(v) -> bool:
  return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _optional_int(e, name: str) -> int | None:
  """config.eval.<name>: an integer or None."""
  v = e.get(name)
  if v is None:
    return None
  if not _is_int(v):
    raise ValueError(f"config.eval.{name}={v!r} must be an integer or None; set e.g. "
                     f"--config.eval.{name}=5 or --config.eval.{name}=None")
  return int(v)


def _optional_steps(v) -> tuple[int, ...] | None:
  """config.eval.checkpoint_steps: a list of steps, one step, or None."""
  if v is None:
    return None
  steps = [v] if _is_int(v) else v
  if not isinstance(steps, (list, tuple)) or not all(_is_int(s) for s in steps):
    raise ValueError(f"config.eval.checkpoint_steps={v!r} must be a list of training steps or "
                     "None; set e.g. --config.eval.checkpoint_steps=[2000,4000]")
  return tuple(int(s) for s in steps)


def _optional_path(e, name: str) -> str | None:
  """config.eval.<name>: a path, or None / '' for unset."""
  v = e.get(name)
  if v is None or v == "":
    return None
  if not isinstance(v, str):
    raise ValueError(f"config.eval.{name}={v!r} must be a path (a string) or None")
  return v


def check_batch_size(batch_size: int, num_devices: int) -> None:
  """`eval.batch_size` is a global batch split over every device: a positive multiple of
  `num_devices`. Raises ValueError naming the nearest valid values otherwise."""
  if batch_size > 0 and batch_size % num_devices == 0:
    return
  below = batch_size // num_devices * num_devices
  valid = [v for v in (below, below + num_devices) if v > 0]
  raise ValueError(
      f"config.eval.batch_size={batch_size} is not a multiple of the device count "
      f"({num_devices}): each global batch is split evenly over the devices. Set "
      + " or ".join(f"--config.eval.batch_size={v}" for v in valid))


@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """What an evaluation computes (the config's `eval` part, with the run's seed,
  snapshot frequency and sampler), read once by `from_config`; see the module docstring."""
  seed: int
  snapshot_freq: int
  checkpoint_steps: tuple[int, ...] | None
  begin_ckpt: int | None
  end_ckpt: int | None
  batch_size: int
  enable_loss: bool
  enable_bpd: bool
  bpd_dataset: str
  bpd_num_repeats: int
  bpd_max_examples: int | None
  bpd_rtol: float
  bpd_atol: float
  enable_sampling: bool
  num_samples: int
  sampling: Any  # the config's `sampling` part (`sampling.get_sampling_fn`)
  feature_kinds: tuple[str, ...]
  stats_path: str | None
  digits_stats_path: str | None
  stats_split: str
  inception_weights: str | None
  inception_batch_size: int
  cache_dir: str | None

  @classmethod
  def from_config(cls, config) -> "EvalSettings":
    """The settings of `config.eval`; a field that may be None is checked here (the config
    gives it as a Python literal, `configs.blocks.optional`), naming the field and the fix."""
    e = config.eval
    return cls(
        seed=int(config.seed), snapshot_freq=int(config.training.snapshot_freq),
        checkpoint_steps=_optional_steps(e.get("checkpoint_steps")),
        begin_ckpt=_optional_int(e, "begin_ckpt"), end_ckpt=_optional_int(e, "end_ckpt"),
        batch_size=int(e.batch_size), enable_loss=bool(e.get("enable_loss", True)),
        enable_bpd=bool(e.get("enable_bpd", False)), bpd_dataset=str(e.get("bpd_dataset", "test")),
        bpd_num_repeats=int(e.get("bpd_num_repeats", 1)),
        bpd_max_examples=_optional_int(e, "bpd_max_examples"),
        bpd_rtol=float(e.get("bpd_rtol", 1e-5)), bpd_atol=float(e.get("bpd_atol", 1e-5)),
        enable_sampling=bool(e.get("enable_sampling", False)),
        num_samples=int(e.get("num_samples", 0)), sampling=config.sampling,
        feature_kinds=feature_kinds(e.get("feature_kinds"), str(config.data.dataset)),
        stats_path=_optional_path(e, "stats_path"),
        digits_stats_path=_optional_path(e, "digits_stats_path"),
        stats_split=str(e.get("stats_split", "train")),
        inception_weights=_optional_path(e, "inception_weights"),
        inception_batch_size=int(e.get("inception_batch_size", 200)),
        cache_dir=_optional_path(e, "cache_dir"))

  def request(self) -> dict:
    """What an evaluation was asked to compute; a finished ckpt_S.json is reused only if equal."""
    return {"enable_loss": self.enable_loss, "enable_bpd": self.enable_bpd,
            "bpd_dataset": self.bpd_dataset, "bpd_num_repeats": self.bpd_num_repeats,
            "enable_sampling": self.enable_sampling, "num_samples": self.num_samples,
            "batch_size": self.batch_size, "feature_kinds": list(self.feature_kinds),
            "stats": [str(self.stats_path or ""), str(self.digits_stats_path or ""),
                      str(self.stats_split)]}


def checkpoint_steps(s: EvalSettings, workdir: str) -> list[int]:
  """The checkpoint steps to evaluate (see the module docstring), those present only."""
  manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"),
                                    snapshot_freq=s.snapshot_freq, read_only=True)
  try:
    available = sorted(int(step) for step in manager.all_steps())
  finally:
    manager.close()
  if s.checkpoint_steps is not None:
    requested = list(s.checkpoint_steps)
  elif s.begin_ckpt is not None and s.end_ckpt is not None:
    requested = [k * s.snapshot_freq for k in range(s.begin_ckpt, s.end_ckpt + 1)]
  else:
    requested = available
  missing = [step for step in requested if step not in available]
  if missing:
    log.warning("no checkpoint for step(s) %s in %s/checkpoints (available: %s); skipping them",
                missing, workdir, available)
  steps = [step for step in requested if step in available]
  if not steps:
    raise FileNotFoundError(
        f"none of the requested checkpoint steps {requested} exists under {workdir}/checkpoints "
        f"(available: {available}); train first with --mode=train, or set "
        "--config.eval.begin_ckpt/end_ckpt (in units of training.snapshot_freq) or "
        "--config.eval.checkpoint_steps")
  return steps


# ------------------------------------------------------------------------------ the parts

def eval_loss(c: Components, state: TrainState, mesh, batches, *, seed: int,
              batch_size: int, num_batches: int | None = None) -> dict:
  """Mean loss of the EMA parameters over the test split (`batches("test", batch_size)`,
  `num_batches` of them if known: the progress bar's total)."""
  check_batch_size(batch_size, mesh.devices.size)
  rep = parallel.replicated(mesh)
  step_fn = jax.jit(setup.scaled_eval_step(c),
                    in_shardings=(rep, parallel.batch_sharded(mesh), rep), out_shardings=rep)
  key = jax.random.fold_in(jax.random.key(seed), _LOSS_TAG)
  losses = [float(step_fn(state, parallel.global_batch(batch, mesh), jax.random.fold_in(key, b))["eval_loss"])
            for b, batch in enumerate(progress.bar(batches("test", batch_size), desc="eval loss",
                                                   total=num_batches, unit="batch"))]
  if not losses:
    raise ValueError(f"the test split has fewer examples than eval.batch_size={batch_size}")
  return {"eval_loss": float(np.mean(losses)), "eval_loss_batches": len(losses)}


def _extractors(s: EvalSettings, image_size: int) -> tuple[dict, dict]:
  """{kind: FeatureExtractor} for the kinds that can run, and {kind: why not} for the rest."""
  extractors, skipped = {}, {}
  for kind in s.feature_kinds:
    try:
      extractors[kind] = reference_stats.make_extractor(
          kind, image_size=image_size, inception_weights=s.inception_weights,
          batch_size=s.inception_batch_size if kind == "inception" else 1000,
          cache_dir=s.cache_dir)
    except reference_stats.InceptionWeightsUnavailable as e:
      skipped[kind] = f"FID/IS/KID skipped: {e}"
      log.warning("%s", skipped[kind])
  return extractors, skipped


def _reference(s: EvalSettings, workdir: str, kind: str, extractor,
               dataset: data.EvalData) -> tuple[dict, str]:
  """Reference statistics for `kind`: the configured file, or computed once under workdir/eval."""
  split = s.stats_split
  configured = s.stats_path if kind == "inception" else s.digits_stats_path
  path = configured or os.path.join(
      workdir, "eval", f"reference_{kind}_{dataset.dataset}_{split}.npz")
  if os.path.isfile(path):
    stats = reference_stats.load_stats(path)
    if "kind" in stats and str(stats["kind"]) != kind:
      raise ValueError(f"{path} holds {stats['kind']} statistics, not {kind}")
    return stats, path
  if configured:
    raise FileNotFoundError(
        f"reference statistics {path!r} do not exist; compute them with "
        f"python -m scorejax.main --mode=fid_stats --config=... --split={split} --features={kind} "
        f"--out={path}")
  log.info("computing the %s reference statistics of %s/%s once -> %s", kind,
           dataset.dataset, split, path)
  feats, logits = reference_stats.dataset_features(dataset.images(split), extractor, name=split)
  stats = reference_stats.save_stats(path, feats, logits, kind=kind, dataset=dataset.dataset,
                                     split=split, image_size=dataset.image_size)
  _sync("scorejax_eval_reference")
  return stats, path


def sample_rounds(c: Components, state: TrainState, step: int, directory: str, mesh,
                  extractors: dict, *, sampling: Any, batch_size: int, num_samples: int, seed: int,
                  round_callback: Callable[[int, int], None] | None = None) -> list[str]:
  """Samples every missing round of checkpoint `step` into `directory`; returns all round files.

  `num_samples` samples in rounds of `batch_size` with the sampler of `sampling` (the
  config's `sampling` part); round k's key is fold_in(fold_in(fold_in(key(seed), tag),
  step), k). Rounds whose file exists are not redone; a round file lacking the features
  of a kind (e.g. the Inception weights were given only later) gets them added. A
  progress bar counts the rounds (with the sampler's NFE per sample).
  """
  bs = batch_size
  check_batch_size(bs, mesh.devices.size)
  num_rounds = -(-num_samples // bs)
  paths = [os.path.join(directory, f"round_{k}.npz") for k in range(num_rounds)]
  images = len(c.data_shape) == 3
  sample = get_sampling_fn(sampling, c.sde, (bs,) + c.data_shape)

  def sample_fn(st, key):
    x, nfe = sample(key, setup.ema_score_fn(c, st))
    x = c.inverse_scaler(x)
    if images:  # score_sde's quantization of samples for FID
      x = jnp.clip(x * 255.0, 0.0, 255.0).astype(jnp.uint8)
    return x, nfe

  rep = parallel.replicated(mesh)
  sample_jit = jax.jit(sample_fn, in_shardings=(rep, rep),
                       out_shardings=(parallel.batch_sharded(mesh), rep))
  base = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _SAMPLE_TAG), step)
  def usable(path):  # a round file of this request (written with the same batch size)
    if not os.path.isfile(path):
      return False
    with np.load(path) as f:
      ok = f["samples"].shape == (bs,) + c.data_shape
    if not ok:
      log.warning("%s was sampled with another eval.batch_size or data shape; sampling it again", path)
    return ok

  done = [usable(p) for p in paths]
  if any(done):
    log.info("checkpoint %d: %d of %d sampling rounds already done; resuming at round %d",
             step, sum(done), num_rounds, done.index(False) if not all(done) else num_rounds)
  pbar = progress.bar(desc=f"checkpoint {step}: sampling rounds", total=num_rounds, unit="round")
  pbar.update(sum(done))
  try:
    for k, path in enumerate(paths):
      if done[k]:
        with np.load(path) as f:
          stored = {name: f[name] for name in f.files}
        missing = [kind for kind in extractors if f"{kind}_features" not in stored]
        if missing:
          for kind in missing:
            stored[f"{kind}_features"], stored[f"{kind}_logits"] = extractors[kind](stored["samples"])
          _atomic_savez(path, **stored)
        continue
      x, nfe = sample_jit(state, jax.random.fold_in(base, k))
      arrays = {"samples": reference_stats.to_host(x), "nfe": np.asarray(nfe)}
      pbar.set_postfix(nfe=f"{float(np.mean(arrays['nfe'])):.0f}", refresh=False)
      for kind, extractor in extractors.items():
        arrays[f"{kind}_features"], arrays[f"{kind}_logits"] = extractor(arrays["samples"])
      _atomic_savez(path, **arrays)
      _sync("scorejax_eval_round")
      pbar.update(1)
      log.debug("checkpoint %d: sampling round %d/%d written to %s", step, k + 1, num_rounds, path)
      if round_callback is not None:
        round_callback(step, k)
  finally:
    pbar.close()
  return paths


def sample_metrics(s: EvalSettings, workdir: str, paths: list[str], extractors: dict,
                   dataset: data.EvalData) -> dict:
  """FID/IS/KID and/or the digits-classifier Fréchet distance of the samples in `paths`."""
  n = s.num_samples
  loaded = {}
  for p in paths:
    with np.load(p) as f:
      for name in f.files:
        loaded.setdefault(name, []).append(f[name])
  arrays = {name: np.concatenate(v)[:n] for name, v in loaded.items() if name != "nfe"}
  out: dict[str, Any] = {"num_samples": int(arrays["samples"].shape[0]),
                         "nfe_mean": float(np.mean(loaded["nfe"])), "reference": {}}
  for kind, extractor in extractors.items():
    ref, ref_path = _reference(s, workdir, kind, extractor, dataset)
    out["reference"][kind] = ref_path
    feats = arrays[f"{kind}_features"]
    fd = frechet_distance(*feature_statistics(feats), ref["mu"], ref["sigma"])
    if kind == "inception":
      out["fid"] = fd
      out["inception_score"], out["inception_score_std"] = inception_score(
          arrays["inception_logits"], splits=min(10, feats.shape[0]))
      if "features" in ref:
        out["kid"] = kernel_inception_distance(feats, ref["features"])
      else:
        out.setdefault("skipped", {})["kid"] = (f"{ref_path} stores no features (computed with "
                                                "--nosave_features); KID needs them")
    else:  # a different feature space: never reported as FID
      out["fd_digits_classifier"] = fd
  return out


# ------------------------------------------------------------------------------ the loop

def _num_batches(dataset: data.EvalData, split: str, batch_size: int) -> int | None:
  """Batches per pass over `split` (a progress bar's total), or None if it cannot be told."""
  if dataset.num_batches is None:
    return None
  try:
    return dataset.num_batches(split, batch_size)
  except Exception:  # noqa: BLE001  (a bar without a total; reading the data reports the error)
    return None


def _finished(s: EvalSettings, workdir: str, step: int) -> bool:
  """Whether ckpt_<step>.json holds a complete evaluation of the same request."""
  previous = _read_json(os.path.join(workdir, "eval", f"ckpt_{step}.json"))
  return previous is not None and previous.get("request") == s.request() \
      and not previous.get("skipped")


def evaluate_checkpoint(c: Components, s: EvalSettings, dataset: data.EvalData, workdir: str,
                        step: int, *, extractors: dict, skipped: dict,
                        writer: MetricsWriter | None = None,
                        round_callback: Callable[[int, int], None] | None = None) -> dict:
  """Evaluates the checkpoint at `step` (resuming any partial work); returns its results."""
  request = s.request()
  eval_dir = os.path.join(workdir, "eval")
  result_path = os.path.join(eval_dir, f"ckpt_{step}.json")
  if _finished(s, workdir, step):
    log.info("checkpoint %d already evaluated (%s)", step, result_path)
    return _read_json(result_path)
  mesh = parallel.data_mesh()
  state, _ = setup.load_state(c, workdir, seed=s.seed, snapshot_freq=s.snapshot_freq, step=step)
  result: dict[str, Any] = {"step": step, "request": request}
  if skipped:
    result["skipped"] = dict(skipped)

  if s.enable_loss:
    path = os.path.join(eval_dir, f"ckpt_{step}", "loss.json")
    part = _read_json(path)
    if part is None:
      part = eval_loss(c, state, mesh, dataset.batches, seed=s.seed, batch_size=s.batch_size,
                       num_batches=_num_batches(dataset, "test", s.batch_size))
      _atomic_write_json(path, part)
    result.update(part)

  if s.enable_bpd:
    path = os.path.join(eval_dir, f"ckpt_{step}", "bpd.json")
    part = _read_json(path)
    if part is None:
      r = bpd.bpd_of_state(c, state, dataset.batches, workdir, step=step, split=s.bpd_dataset,
                           batch_size=s.batch_size, num_repeats=s.bpd_num_repeats,
                           max_examples=s.bpd_max_examples, rtol=s.bpd_rtol, atol=s.bpd_atol,
                           seed=s.seed,
                           num_batches=_num_batches(dataset, s.bpd_dataset, s.batch_size))
      part = {"bpd": r["bpd"], "bpd_stderr": r["bpd_stderr"], "bpd_num_examples": r["num_examples"],
              "bpd_num_repeats": r["num_repeats"], "bpd_nfe_mean": r["nfe_mean"]}
      _atomic_write_json(path, part)
    result.update(part)

  if s.enable_sampling:
    paths = sample_rounds(c, state, step, os.path.join(eval_dir, f"ckpt_{step}"), mesh, extractors,
                          sampling=s.sampling, batch_size=s.batch_size, num_samples=s.num_samples,
                          seed=s.seed, round_callback=round_callback)
    metrics = sample_metrics(s, workdir, paths, extractors, dataset)
    if metrics.get("skipped"):
      result.setdefault("skipped", {}).update(metrics.pop("skipped"))
    result.update(metrics)

  _atomic_write_json(result_path, result)
  if writer is not None:
    writer.scalars(step, {k: v for k, v in result.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"
                          and math.isfinite(v)})
    writer.flush()
  summary = ", ".join(f"{k}={result[k]:.5g}" for k in
                      ("eval_loss", "bpd", "fid", "inception_score", "kid", "fd_digits_classifier")
                      if k in result)
  log.info("checkpoint %d: %s -> %s", step, summary or "nothing enabled", result_path)
  for why in result.get("skipped", {}).values():
    log.warning("checkpoint %d: %s", step, why)
  return result


def evaluate(config, workdir: str, *,
             round_callback: Callable[[int, int], None] | None = None) -> dict[int, dict]:
  """Evaluates every requested checkpoint of `workdir`; returns {step: results}.

  The config edge of `--mode=eval`. `round_callback(step, k)` is called after
  sampling round k of checkpoint `step` is written (a hook for progress reporting
  and for tests that simulate preemption). `config.eval` is checked before any
  work (its fields' types; `eval.batch_size` a multiple of the device count).
  Progress bars (process 0, stderr) count checkpoints, sampling rounds, bits/dim
  and feature batches.
  """
  parallel.maybe_initialize_distributed()
  s = EvalSettings.from_config(config)
  check_batch_size(s.batch_size, jax.device_count())
  dataset = data.eval_data(config)
  steps = checkpoint_steps(s, workdir)
  extractors, skipped = {}, {}
  if s.enable_sampling and not all(_finished(s, workdir, step) for step in steps):
    extractors, skipped = _extractors(s, dataset.image_size)
  c = setup.build_components(config)
  writer = MetricsWriter(os.path.join(workdir, "eval"), enabled=jax.process_index() == 0)
  results = {}
  try:
    for step in progress.bar(steps, desc="eval checkpoints", unit="ckpt"):
      results[step] = evaluate_checkpoint(c, s, dataset, workdir, step, extractors=extractors,
                                          skipped=skipped, writer=writer,
                                          round_callback=round_callback)
  finally:
    writer.close()
  return results
