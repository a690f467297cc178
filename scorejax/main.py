r"""The command line: train, evaluate, sample, bits/dim, reference statistics.

    python -m scorejax.main --config=configs/ve_cifar10.py --workdir=runs/ve --mode=train
    python -m scorejax.main --config=configs/digits.py --workdir=runs/digits \
        --config.training.n_iters=2000
    python -m scorejax.main --config=... --workdir=DIR --mode=eval      # samples, FID/IS/KID, bpd
    python -m scorejax.main --config=... --workdir=DIR --mode=sample    # DIR/samples/sample_mode/
    python -m scorejax.main --config=configs/digits.py --workdir=runs/digits --mode=train_classifier
    python -m scorejax.main --config=configs/digits.py --workdir=runs/digits --mode=sample \
        --config.sampling.task=class --config.sampling.guidance=classifier   # docs/controllable.md
    python -m scorejax.main --config=configs/vp_cifar10.py --workdir=runs/vp --mode=likelihood \
        --checkpoint=26 --split=test --divergence=hutchinson_rademacher --num_repeats=5
    python -m scorejax.main --config=configs/ve_cifar10.py --mode=fid_stats --split=train \
        --out=stats/cifar10_train.npz --inception_weights=pt_inception-2015-12-05-6726825d.pth

Exit codes: 0 done; 1 a clear error (printed as one `FATAL:` line: a config
that cannot run, a workdir in use by another run, a resume whose config differs,
a diverged run, ...); 75 (`PREEMPTED_EXIT_CODE`) stopped by SIGTERM after saving a
checkpoint: rerun the same command to resume (the launch scripts requeue on it).

`--config` is an ml_collections config file (optionally `file.py:arg`, e.g.
`:smoke`); any field can be overridden with `--config.a.b=value`, and an unknown
field is an error. Rerunning the same command with the same `--workdir` resumes.

This is the edge where the config is read: it is validated here, and each mode's
function builds its typed settings and components from it once.

Modes, the function each calls, and their own options (an option of another mode
is an error):
  train       training.loop.train_and_evaluate: --allow_config_change
  train_classifier  training.classifier.train_classifier (config.classifier, into
              workdir/classifier): --allow_config_change
  eval        evaluation.loop.evaluate (options: config.eval.*)
  sample      evaluation.samples.sample_from_workdir; with config.sampling.task in inpaint,
              colorize, class, interpolate: evaluation.tasks.sample_task_from_workdir;
              inverse: evaluation.inverse.reconstruct_from_workdir
  likelihood  evaluation.bpd.evaluate_bpd: --checkpoint --untrained --split --divergence
              --num_repeats --max_examples --batch_size --rtol --atol --eps --bound_n_t
  fid_stats   evaluation.reference_stats.compute_reference_stats (no --workdir): --out
              --split --features --inception_weights --batch_size --max_examples
              --save_features --cache_dir
"""

from __future__ import annotations

import json
import logging
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

# Importing builds no JAX arrays: jax.distributed.initialize() can still come first.
from scorejax import compilation_cache, config_check
from scorejax.evaluation import bpd, reference_stats, samples, tasks
from scorejax.evaluation import loop as evaluation_loop
from scorejax.evaluation.metrics import digits_classifier, inception
from scorejax.likelihood import DIVERGENCES, LIKELIHOOD_EPS
from scorejax.likelihood_bound import BOUND_N_T
from scorejax.training import classifier as training_classifier
from scorejax.training import loop as training_loop
from scorejax.training import checkpoint, parallel, run_config, run_lock
from scorejax.training.guard import NonFiniteLossError

MODES = ("train", "train_classifier", "eval", "sample", "likelihood", "fid_stats")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (file.py or file.py:arg).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples "
                               "(every mode but fid_stats).")
_MODE = flags.DEFINE_string("mode", "train", f"One of {MODES}.")

# --mode=train
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False, "train, train_classifier: resume even though optimizer, seed, batch size or "
    "other training fields differ from the run's recorded config (model, data, SDE and loss "
    "fields can never change; schedule, logging, sampling and eval fields always can).")
# --mode=likelihood and --mode=fid_stats
_SPLIT = flags.DEFINE_string("split", None, "likelihood, fid_stats: dataset split, 'test' or "
                             "'train' (default: 'test' for likelihood, 'train' for fid_stats).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "likelihood, fid_stats: global batch size "
                                   "(default: config.eval.batch_size for likelihood, 200 for "
                                   "fid_stats, rounded up to a multiple of the device count).")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", None, "likelihood, fid_stats: use at most "
                                     "this many examples (per pass).")
# --mode=likelihood
_CHECKPOINT = flags.DEFINE_integer("checkpoint", None, "likelihood: checkpoint step (default: "
                                   "the newest).")
_UNTRAINED = flags.DEFINE_bool("untrained", False, "likelihood: evaluate the freshly initialized "
                               "model (a baseline).")
_DIVERGENCE = flags.DEFINE_enum("divergence", "hutchinson_rademacher", sorted(DIVERGENCES),
                                "likelihood: divergence of the probability-flow ODE.")
_NUM_REPEATS = flags.DEFINE_integer("num_repeats", 1, "likelihood: passes over the split with "
                                    "fresh dequantization noise.")
_RTOL = flags.DEFINE_float("rtol", 1e-5, "likelihood: ODE solver relative tolerance.")
_ATOL = flags.DEFINE_float("atol", 1e-5, "likelihood: ODE solver absolute tolerance.")
_EPS = flags.DEFINE_float("eps", LIKELIHOOD_EPS, "likelihood: time floor where the ODE starts.")
_BOUND_N_T = flags.DEFINE_integer("bound_n_t", BOUND_N_T, "likelihood: times per example of the "
                                  "variational bound's Monte-Carlo estimate (0: ODE only).")
# --mode=fid_stats
_OUT = flags.DEFINE_string("out", None, "fid_stats: output .npz path (required).")
_FEATURES = flags.DEFINE_enum("features", "inception", list(reference_stats.FEATURE_KINDS),
                              "fid_stats: feature network.")
_INCEPTION_WEIGHTS = flags.DEFINE_string(
    "inception_weights", None, "fid_stats: FID Inception weights (.pth/.npz); default "
    f"${inception.WEIGHTS_ENV}.")
_SAVE_FEATURES = flags.DEFINE_bool("save_features", True, "fid_stats: also store the features "
                                   "(for KID) and the logits.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "fid_stats: cache of the digits classifier "
                                 f"(default ${digits_classifier.CACHE_ENV} or ~/.cache/scorejax).")
# every mode
_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", None, "Directory of the persistent XLA compilation cache, or 'off' "
    f"(default: ${compilation_cache.ENV}, else JAX's own setting, else "
    "$XDG_CACHE_HOME/scorejax/xla or ~/.cache/scorejax/xla): a rerun or resume of the same "
    "config loads its compiled programs instead of compiling them again.")
flags.mark_flags_as_required(["config"])

# The options that belong to one mode or two; any other mode refuses them.
MODE_OPTIONS = {
    "train": ("allow_config_change",),
    "train_classifier": ("allow_config_change",),
    "likelihood": ("split", "batch_size", "max_examples", "checkpoint", "untrained", "divergence",
                   "num_repeats", "rtol", "atol", "eps", "bound_n_t"),
    "fid_stats": ("split", "batch_size", "max_examples", "out", "features", "inception_weights",
                  "save_features", "cache_dir"),
}


def _check_options(mode: str) -> None:
  """Usage errors for an unknown mode, a missing --workdir/--out, another mode's option."""
  if mode not in MODES:
    raise app.UsageError(f"--mode={mode!r} is not one of {MODES}")
  for name in sorted({n for names in MODE_OPTIONS.values() for n in names}):
    owners = [m for m, names in MODE_OPTIONS.items() if name in names]
    if flags.FLAGS[name].present and mode not in owners:
      raise app.UsageError(f"--{name} is an option of {' and '.join('--mode=' + m for m in owners)}, "
                           f"not of --mode={mode}")
  if mode == "fid_stats":
    if not _OUT.value:
      raise app.UsageError("--mode=fid_stats needs --out=PATH.npz for the statistics")
  elif not _WORKDIR.value:
    raise app.UsageError(f"--mode={mode} needs --workdir=DIR")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  absl_logging.set_verbosity(absl_logging.WARNING)  # libraries (orbax) log every save at INFO
  logging.getLogger("scorejax").setLevel(logging.INFO)
  mode = _MODE.value
  _check_options(mode)
  parallel.maybe_initialize_distributed()  # before anything touches a JAX backend
  cache_dir = compilation_cache.enable(_COMPILATION_CACHE.value)
  config = _CONFIG.value
  config_check.validate(config)
  with compilation_cache.CompileCounter() as compiled:
    try:
      _run_mode(mode, config, _WORKDIR.value)
    finally:
      logging.getLogger("scorejax").info(
          "compilation: %s (cache: %s)", compiled.summary(), cache_dir or "off")


def _run_mode(mode: str, config, workdir: str | None) -> None:
  trainers = {"train": training_loop.train_and_evaluate,
              "train_classifier": training_classifier.train_classifier}
  if mode in trainers:
    try:
      trainers[mode](config, workdir, allow_config_change=_ALLOW_CONFIG_CHANGE.value)
    except training_loop.Preempted as e:
      sys.stderr.write(f"{e} (exit code {training_loop.PREEMPTED_EXIT_CODE})\n")
      sys.exit(training_loop.PREEMPTED_EXIT_CODE)
  elif mode == "sample":
    if str(config.sampling.get("task", "unconditional")) in ("unconditional", *samples.TASKS):
      path = samples.sample_from_workdir(config, workdir)
    else:
      path = tasks.sample_task_from_workdir(config, workdir)
    print(f"samples written to {path}")
  elif mode == "eval":
    results = evaluation_loop.evaluate(config, workdir)
    print(f"evaluated checkpoint(s) {sorted(results)}; results in {workdir}/eval/")
  elif mode == "likelihood":
    _likelihood(config, workdir)
  elif mode == "fid_stats":
    _fid_stats(config)


def _likelihood(config, workdir: str) -> None:
  r = bpd.evaluate_bpd(config, workdir, step=_CHECKPOINT.value, untrained=_UNTRAINED.value,
                       split=_SPLIT.value or "test", divergence=_DIVERGENCE.value,
                       num_repeats=_NUM_REPEATS.value, max_examples=_MAX_EXAMPLES.value,
                       batch_size=_BATCH_SIZE.value, rtol=_RTOL.value, atol=_ATOL.value,
                       eps=_EPS.value, bound_n_t=_BOUND_N_T.value)
  which = "untrained model" if r["untrained"] else f"checkpoint {r['step']}"
  print(f"{which}, {r['split']} split, {r['num_examples']} examples x {r['num_repeats']} "
        f"dequantization draw(s), divergence={r['divergence']}:")
  print(f"  bits/dim = {r['bpd']:.4f} ± {r['bpd_stderr']:.4f} (standard error)")
  if r["bound_n_t"]:
    print(f"  variational bound = {r['bound_bpd']:.4f} ± {r['bound_bpd_stderr']:.4f} bits/dim "
          f"({r['bound_n_t']} times per example); bound - ODE = {r['bound_minus_ode_bpd']:.4f} ± "
          f"{r['bound_minus_ode_bpd_stderr']:.4f}")
  print(f"  per example: {r['examples_file']}")
  print(f"  NFE per batch = {r['nfe_mean']:.0f}, throughput = {r['examples_per_second']:.1f} examples/s")


def _fid_stats(config) -> None:
  try:
    stats = reference_stats.compute_reference_stats(
        config, _SPLIT.value or "train", _OUT.value, kind=_FEATURES.value,
        inception_weights=_INCEPTION_WEIGHTS.value, batch_size=_BATCH_SIZE.value or 200,
        max_examples=_MAX_EXAMPLES.value, save_features=_SAVE_FEATURES.value,
        cache_dir=_CACHE_DIR.value)
  except reference_stats.InceptionWeightsUnavailable as e:
    sys.stderr.write(f"FATAL: {e}\n")
    sys.exit(1)
  print(json.dumps({"out": _OUT.value, "kind": _FEATURES.value,
                    "num_examples": int(stats["num_examples"]),
                    "feature_dim": int(stats["mu"].shape[0])}))


def _unknown_override(argv) -> str | None:
  """The first `--config.a.b=...` override naming no field of the loaded config, explained."""
  spec = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--config=")), None)
  if spec is None:
    return None
  config = flags.FLAGS["config"].parser.parse(spec)  # the config file, before overrides
  for arg in argv[1:]:
    if not arg.startswith("--config."):
      continue
    path = arg[len("--config."):].split("=", 1)[0].split(".")
    node = config
    for i, key in enumerate(path):
      if not hasattr(node, "keys") or key not in node.keys():
        where = ".".join(["config"] + path[:i])
        valid = sorted(node.keys()) if hasattr(node, "keys") else []
        return (f"{arg}: config has no field {where}.{key} (valid fields of {where}: {valid}); "
                "fix the name or add the field to the config file")
      node = node[key]
  return None


def _parse_flags(argv):
  """absl's parser, with a clear message for an override of an unknown config field."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:  # raised by ml_collections for unknown fields
    try:
      message = _unknown_override(argv)
    except Exception:  # noqa: BLE001  (the config file itself did not load: show the original)
      message = None
    if message is None:
      raise
    sys.stderr.write(f"FATAL Flags parsing error: {message}\n")
    sys.exit(1)


# Errors whose message says what is wrong and how to fix it: printed without a traceback.
CLEAR_ERRORS = (config_check.ConfigError, run_config.ConfigMismatchError,
                run_lock.WorkdirInUseError, NonFiniteLossError, checkpoint.CheckpointError,
                checkpoint.CheckpointWriteError, checkpoint.NonFiniteStateError)


def _main_with_clear_errors(argv) -> None:
  try:
    main(argv)
  except CLEAR_ERRORS as e:
    sys.stderr.write(f"FATAL: {e}\n")
    sys.exit(1)


def run() -> None:
  app.run(_main_with_clear_errors, flags_parser=_parse_flags)


if __name__ == "__main__":
  sys.exit(run())
