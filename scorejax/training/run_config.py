"""The config a run was trained with, kept beside its checkpoints and checked on resume.

`workdir/config.json` records the run's config. A rerun on a workdir that has
checkpoints compares its config with the record before anything is restored:

* fields that give the checkpoint its meaning (the model, the data shape and
  scaling, the SDE and the loss: `IDENTITY_FIELDS`) must not change — a resume with
  a changed one fails with `ConfigMismatchError` listing every difference;
* fields of the schedule, logging, sampling and evaluation (`HARMLESS_FIELDS`:
  n_iters, log_freq, ...) may change; the changes are logged (n_iters excepted where
  the learning rate decays to 0 at it: `optim.lr_decay` with `optim.decay_steps` None);
* any other change (optimizer, seed, batch size, EMA rate, ...) alters the
  continued training and needs `allow_config_change=True` (`--allow_config_change`).

Fields present on one side only (a newer or older scorejax added or removed them)
are logged and allowed. The record is written only after a successful restore
(`record_config`); when it changes, the previous one is kept as
`config.before_step_N.json`.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Mapping

import jax

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"

# (prefix of a dotted field name): a field matches a prefix equal to it or followed by "."
IDENTITY_FIELDS = ("model", "data.dataset", "data.image_size", "data.num_channels",
                   "data.centered", "data.toy_name", "training.sde", "training.continuous",
                   "training.reduce_mean", "training.likelihood_weighting",
                   "training.importance_weighting")
# change the continued training only (model.dtype: the arithmetic, not the parameters)
IDENTITY_EXCEPTIONS = ("model.ema_rate", "model.dropout", "model.dtype")
HARMLESS_FIELDS = ("training.n_iters", "training.log_freq", "training.eval_freq",
                   "training.snapshot_freq", "training.snapshot_freq_for_preemption",
                   "training.snapshot_sampling", "training.snapshot_sample_count", "sampling", "eval",
                   "data.data_dir", "training.init_from", "classifier")


class ConfigMismatchError(ValueError):
  """The config of a resume differs from the run's record in fields that must not change."""


def _matches(field: str, prefixes: tuple[str, ...]) -> bool:
  return any(field == p or field.startswith(p + ".") for p in prefixes)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """{'a.b': value} for a nested mapping (lists and scalars are leaves)."""
  out = {}
  for k, v in tree.items():
    name = f"{prefix}{k}"
    if isinstance(v, Mapping):
      out.update(flatten(v, name + "."))
    else:
      out[name] = v
  return out


def config_as_dict(config) -> dict[str, Any]:
  """The config as the JSON the record holds (what `to_json_best_effort` writes)."""
  return json.loads(config.to_json_best_effort(sort_keys=True))


# A classifier run (`--mode=train_classifier`): its network, its data and the SDE whose
# noise it is trained on define it; the score model's and its training's fields do not.
CLASSIFIER_IDENTITY_FIELDS = ("classifier", "data.dataset", "data.image_size",
                              "data.num_channels", "data.centered", "training.sde",
                              "model.sigma_min", "model.sigma_max", "model.beta_min",
                              "model.beta_max")
CLASSIFIER_IDENTITY_EXCEPTIONS = ("classifier.ema_rate", "classifier.dropout",
                                  "classifier.n_iters", "classifier.log_freq",
                                  "classifier.eval_freq", "classifier.snapshot_freq",
                                  "classifier.snapshot_freq_for_preemption", "classifier.batch_size",
                                  "classifier.optim", "classifier.eps")
CLASSIFIER_HARMLESS_FIELDS = tuple(f for f in HARMLESS_FIELDS if f != "classifier") + (
    "model", "training", "optim", "classifier.n_iters", "classifier.log_freq",
    "classifier.eval_freq", "classifier.snapshot_freq", "classifier.snapshot_freq_for_preemption")


def _length_sets_the_schedule(flat: Mapping[str, Any], optim: str) -> bool:
  """Whether the run's learning rate depends on its length: a decay (`optim.lr_decay`) that
  ends at n_iters (`optim.decay_steps` None; scorejax.training.optim.schedule_from_config)."""
  return (flat.get(f"{optim}.lr_decay", "none") != "none"
          and flat.get(f"{optim}.decay_steps") is None)


def classify_changes(recorded: Mapping[str, Any], current: Mapping[str, Any], *,
                     identity: tuple[str, ...] = IDENTITY_FIELDS,
                     exceptions: tuple[str, ...] = IDENTITY_EXCEPTIONS,
                     harmless: tuple[str, ...] = HARMLESS_FIELDS,
                     schedule: tuple[str, str] = ("training.n_iters", "optim")
                     ) -> dict[str, list[tuple[str, Any, Any]]]:
  """The differing fields as {'refused' | 'needs_flag' | 'harmless' | 'one_side': [(field, old, new)]}.

  `identity` (less `exceptions`), `harmless`: prefixes of the fields that may never
  change and of those that always may (default: a score model's run). `schedule`: the
  run's length field and its optimizer's prefix; where the learning rate decays to 0 at
  the run's length, a changed length changes the continued training (needs the flag).
  """
  old, new = flatten(recorded), flatten(current)
  length, optim = schedule
  length_matters = _length_sets_the_schedule(old, optim) or _length_sets_the_schedule(new, optim)
  changes = {"refused": [], "needs_flag": [], "harmless": [], "one_side": []}
  for field in sorted(set(old) | set(new)):
    if field not in old or field not in new:
      changes["one_side"].append((field, old.get(field, "<absent>"), new.get(field, "<absent>")))
    elif old[field] != new[field]:
      if _matches(field, identity) and not _matches(field, exceptions):
        kind = "refused"
      elif field == length and length_matters:
        kind = "needs_flag"
      elif _matches(field, harmless):
        kind = "harmless"
      else:
        kind = "needs_flag"
      changes[kind].append((field, old[field], new[field]))
  return changes


def _listing(changes: list[tuple[str, Any, Any]]) -> str:
  return "; ".join(f"config.{f}: {old!r} -> {new!r}" for f, old, new in changes)


def read_record(workdir: str) -> dict[str, Any] | None:
  path = os.path.join(workdir, CONFIG_NAME)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def check_resume(workdir: str, config, *, allow_config_change: bool = False,
                 classifier: bool = False) -> None:
  """Refuses a resume whose config differs from the run's record where it must not.

  Raises ConfigMismatchError listing the refused fields (and, without
  `allow_config_change`, the fields that need it); logs the allowed changes.
  `classifier`: the run is a noise-conditional classifier's (`CLASSIFIER_*_FIELDS`).
  """
  recorded = read_record(workdir)
  if recorded is None:
    log.warning("%s has checkpoints but no %s: the config of the resumed run cannot be checked",
                workdir, CONFIG_NAME)
    return
  kinds = (dict(identity=CLASSIFIER_IDENTITY_FIELDS, exceptions=CLASSIFIER_IDENTITY_EXCEPTIONS,
                harmless=CLASSIFIER_HARMLESS_FIELDS,
                schedule=("classifier.n_iters", "classifier.optim")) if classifier else {})
  changes = classify_changes(recorded, config_as_dict(config), **kinds)
  if changes["refused"]:
    raise ConfigMismatchError(
        f"the config differs from the one the checkpoints in {workdir} were trained with, in "
        f"fields that define the model, data, SDE or loss: {_listing(changes['refused'])}. "
        f"Resume with the recorded values ({os.path.join(workdir, CONFIG_NAME)}) or start a new "
        "run in another --workdir")
  if changes["needs_flag"] and not allow_config_change:
    raise ConfigMismatchError(
        f"the config differs from the one the checkpoints in {workdir} were trained with: "
        f"{_listing(changes['needs_flag'])}. Pass --allow_config_change to continue the run "
        "with the new values, or resume with the recorded ones")
  allowed = changes["needs_flag"] + changes["harmless"]
  if allowed:
    log.info("resuming with changed config fields: %s", _listing(allowed))
  if changes["one_side"]:
    log.warning("config fields present in only one of the record and this config (a different "
                "scorejax version?): %s", _listing(changes["one_side"]))


def record_config(workdir: str, config, start_step: int) -> None:
  """Writes the run's record (process 0); a different previous one is kept beside it."""
  if jax.process_index() != 0:
    return
  path = os.path.join(workdir, CONFIG_NAME)
  text = config.to_json_best_effort(indent=2, sort_keys=True)
  if os.path.exists(path):
    with open(path) as f:
      previous = f.read()
    if previous == text:
      return
    if start_step > 0:
      os.replace(path, os.path.join(workdir, f"config.before_step_{start_step}.json"))
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)
