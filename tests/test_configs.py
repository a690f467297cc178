"""Every shipped config resolves to the values it had before configs/ was restructured.

`data/resolved_configs.json` is `get_config(arg).to_dict()` of every config file (with
'' and 'smoke'; the dataset defaults' without an argument) as it was before the
restructure, tuples as lists. A config may differ from it only by the fields named
in REMOVED (never read anywhere, so they are gone), ADDED (new, with their value) and
ADDED_EVAL_OPTIONAL (new in the image configs, None). A config snapshotted after a field
was added (its entry records the field) is compared with its own entry instead.
No JAX work: this takes seconds.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import sys
from typing import Any

import pytest

from scorejax.models import precision

REPO = pathlib.Path(__file__).resolve().parents[1]
SNAPSHOT = json.loads((pathlib.Path(__file__).parent / "data" / "resolved_configs.json").read_text())
HELPERS = {"__init__", "blocks", "smoke"}  # configs/ modules that are not configs

# Fields no code read (scorejax/, bench/, launch/, tests/): setting them did nothing.
REMOVED = (
    "model.normalization",        # every network hard-codes its own (GroupNorm, InstanceNorm++)
    "model.conv_size",            # NCSN++ convolutions are 3x3 by construction
    "model.interpolation",        # NCSNv2's RefineNet always upsamples bilinearly
    "optim.amsgrad",              # scorejax.optim builds plain Adam only
    "sampling.probability_flow",  # the ODE is sampling.method='ode'
)
ADDED = {
    "training.eps": 1e-5,         # time floor of the continuous DSM loss: t ~ U(eps, T)
    "training.importance_weighting": False,  # t ~ g^2/sigma^2, reweighted (maximum likelihood)
    "training.time_sampling": "iid",         # or 'stratified' / 'antithetic' times over a batch
    "sampling.eps": 1e-3,         # time floor where samplers stop
    "sampling.n_steps": 20,       # steps of a few-step sampling.method
    "sampling.schedule": "default",  # its time grid ('default': the method's own)
    "optim.lr_decay": "none",     # constant after the warm-up (score_sde), or 'cosine' to 0
    "optim.decay_steps": None,    # where the cosine reaches 0 (None: training.n_iters)
}
# New in the configs of the networks with mixed precision (NCSN++, DDPM++, DDPM; issue 13).
ADDED_MIXED_PRECISION = {"model.dtype": "float32"}  # the activations; 'bfloat16' on accelerators
# New fields whose value is a config's own choice, checked only to be a positive int.
ADDED_POSITIVE_INT = (
    "training.n_jitted_steps",    # training steps per dispatch (score_sde's field, issue 13)
)
# New fields a config may declare (read with defaults where it does not): the task of
# `--mode=sample` and its inverse-problem settings (docs/inverse.md).
OPTIONAL_PREFIXES = ("sampling.task", "sampling.inverse.")
# Optional `--mode=eval` fields (None: unset) that scorejax.evaluation.loop always read with
# a default of None; every config that evaluates images (it has eval.begin_ckpt) now
# declares them, so that `--config.eval.<field>=...` can set them. Where the snapshot
# already has the field, its value is kept.
ADDED_EVAL_OPTIONAL = (
    "eval.checkpoint_steps", "eval.bpd_max_examples", "eval.feature_kinds", "eval.stats_path",
    "eval.digits_stats_path", "eval.inception_weights", "eval.cache_dir",
)

# Controllable generation (issue 10), in the image configs of labelled datasets: the
# classifier of `--mode=train_classifier`, label-conditional training, fine-tuning and
# `--mode=sample`'s tasks. Unconditional defaults (checked here); the classifier block and
# the task fields are checked by tests/test_config_check.py and tests/test_classifier.py.
ADDED_CONTROLLABLE = {"model.num_classes": 0, "training.label_dropout": 0.0,
                      "training.init_from": None, "sampling.task": "unconditional"}
ADDED_CONTROLLABLE_PREFIXES = ("classifier.", "sampling.")


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _load(entry: str):
  """The config of a snapshot entry 'name.py' or 'name.py:arg'."""
  filename, _, arg = entry.partition(":")
  module = importlib.import_module(f"configs.{filename.removesuffix('.py')}")
  return module.get_config(arg) if arg else module.get_config()


def _resolved(config) -> dict[str, Any]:
  return _flatten(json.loads(json.dumps(config.to_dict())))  # tuples as lists, as in the snapshot


def _show(value: Any) -> str:
  return f"{value!r} ({type(value).__name__})"


@pytest.mark.parametrize("entry", sorted(SNAPSHOT))
def test_resolved_config_matches_snapshot(entry):
  expected = _flatten(SNAPSHOT[entry])
  actual = _resolved(_load(entry))
  problems = []
  for field in REMOVED:
    expected.pop(field, None)
    if field in actual:
      problems.append(f"{field}: removed (never read) but present, = {_show(actual.pop(field))}")
  for field, value in ADDED.items():
    if field in expected:  # snapshotted with the field: compared with the snapshot below
      continue
    if field not in actual:
      problems.append(f"{field}: missing (should be {_show(value)})")
    elif (type(actual[field]), actual[field]) != (type(value), value):
      problems.append(f"{field}: {_show(actual[field])}, should be {_show(value)}")
    actual.pop(field, None)
  if actual.get("model.name") in precision.MIXED_PRECISION_ARCHITECTURES:
    for field, value in ADDED_MIXED_PRECISION.items():
      if field not in expected and actual.pop(field, "<absent>") != value:
        problems.append(f"{field}: should be {_show(value)}")
  for field in ADDED_POSITIVE_INT:
    if field in actual and field not in expected:
      value = actual.pop(field)
      if type(value) is not int or value < 1:
        problems.append(f"{field}: {_show(value)}, should be a positive int")
  if "model.num_classes" in actual:
    for field, value in ADDED_CONTROLLABLE.items():
      if actual.get(field, "<absent>") != value:
        problems.append(f"{field}: {_show(actual.get(field))}, should be {_show(value)}")
    for field in [f for f in actual if f not in expected and f.startswith(ADDED_CONTROLLABLE_PREFIXES)
                  or f in ADDED_CONTROLLABLE]:
      actual.pop(field)
  if "eval.begin_ckpt" in expected:
    for field in ADDED_EVAL_OPTIONAL:
      if field not in actual:
        problems.append(f"{field}: missing (should be {_show(expected.get(field))})")
      elif field not in expected and actual[field] is not None:
        problems.append(f"{field}: {_show(actual[field])}, should be None (unset)")
      elif field not in expected:
        actual.pop(field)
  for field in [f for f in actual if f.startswith(OPTIONAL_PREFIXES) and f not in expected]:
    actual.pop(field)
  for field in sorted(set(expected) | set(actual)):
    if field not in actual:
      problems.append(f"{field}: missing, was {_show(expected[field])}")
    elif field not in expected:
      problems.append(f"{field}: new field = {_show(actual[field])} (not in the snapshot nor in ADDED)")
    elif (type(actual[field]), actual[field]) != (type(expected[field]), expected[field]):
      problems.append(f"{field}: {_show(actual[field])}, was {_show(expected[field])}")
  assert not problems, f"configs/{entry} differs from its snapshot:\n  " + "\n  ".join(problems)


def test_every_config_file_is_in_the_snapshot():
  files = {p.name for p in (REPO / "configs").glob("*.py") if p.stem not in HELPERS}
  snapshotted = {entry.partition(":")[0] for entry in SNAPSHOT}
  assert files == snapshotted, (f"not snapshotted: {sorted(files - snapshotted)}; "
                                f"snapshotted but gone: {sorted(snapshotted - files)}")


def _experiments() -> list[str]:
  return sorted(entry for entry in SNAPSHOT if entry.endswith(":smoke"))


@pytest.mark.parametrize("entry", _experiments())
def test_loads_by_file_path_as_by_import(entry, monkeypatch):
  """`--config=configs/x.py:smoke` (config_flags runs the file) gives the imported module's
  config, and `--config.data.data_dir` can be set on every image config (a plain None
  field, as CIFAR-10's was, cannot be overridden from the command line)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
  monkeypatch.chdir(REPO)
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=flag_values)
  argv = ["prog", f"--config=configs/{entry}"]
  has_data_dir = "data_dir" in _load(entry).data
  if has_data_dir:
    argv.append("--config.data.data_dir=/data/tfds")
  monkeypatch.setattr(sys, "argv", argv)  # config_flags reads the overrides from sys.argv
  flag_values(argv)
  by_file = _resolved(flag_values.config)
  by_import = _resolved(_load(entry))
  if has_data_dir:
    assert by_file.pop("data.data_dir") == "/data/tfds"
    by_import.pop("data.data_dir")
  assert by_file == by_import


@pytest.mark.parametrize("entry", _experiments())
def test_unknown_argument_names_the_valid_ones(entry):
  with pytest.raises(ValueError, match="valid: '' or 'smoke'"):
    _load(entry.replace(":smoke", ":smol"))


def test_block_changes_must_name_its_fields():
  from configs import blocks  # pylint: disable=import-outside-toplevel
  assert blocks.ddpmpp(nf=64)["nf"] == 64
  with pytest.raises(TypeError, match="num_res_block"):
    blocks.ncsnpp(num_res_block=2)
