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

MODES = ("train", "sample")

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
  from scorejax import config_check
  config = _CONFIG.value
  config_check.validate(config)
  if mode == "train":
    from scorejax.train import train_and_evaluate
    train_and_evaluate(config, _WORKDIR.value)
  elif mode == "sample":
    from scorejax.sample import sample_from_workdir
    path = sample_from_workdir(config, _WORKDIR.value)
    print(f"samples written to {path}")


def run() -> None:
  app.run(main)


if __name__ == "__main__":
  sys.exit(run())
