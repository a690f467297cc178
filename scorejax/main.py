"""Command line: train, evaluate or sample a score model.

    python -m scorejax.main --config=configs/ve_cifar10.py --workdir=runs/ve --mode=train
    python -m scorejax.main --config=configs/digits.py --workdir=runs/digits \
        --config.training.n_iters=2000

`--config` is an ml_collections config file (optionally `file.py:arg`, e.g.
`:smoke`); any field can be overridden with `--config.a.b=value`, and an unknown
field is an error. Rerunning the same command with the same `--workdir` resumes.
"""

from __future__ import annotations

import logging
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

MODES = ("train", "sample", "eval")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (file.py or file.py:arg).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
_MODE = flags.DEFINE_string("mode", "train", f"One of {MODES}.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  absl_logging.set_verbosity(absl_logging.WARNING)  # libraries (orbax) log every save at INFO
  logging.getLogger("scorejax").setLevel(logging.INFO)
  mode = _MODE.value
  if mode not in MODES:
    raise app.UsageError(f"--mode={mode!r} is not one of {MODES}")
  # Before anything touches a JAX backend (importing scorejax.training builds arrays):
  # jax.distributed.initialize() must come first in a multi-process launch.
  from scorejax.training import parallel
  parallel.maybe_initialize_distributed()
  from scorejax import config_check
  config = _CONFIG.value
  config_check.validate(config)
  if mode == "train":
    from scorejax.training.loop import train_and_evaluate
    train_and_evaluate(config, _WORKDIR.value)
  elif mode == "sample":
    from scorejax.evaluation.samples import sample_from_workdir
    path = sample_from_workdir(config, _WORKDIR.value)
    print(f"samples written to {path}")
  elif mode == "eval":
    from scorejax.evaluation.loop import evaluate
    results = evaluate(config, _WORKDIR.value)
    print(f"evaluated checkpoint(s) {sorted(results)}; results in {_WORKDIR.value}/eval/")


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


def run() -> None:
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  sys.exit(run())
