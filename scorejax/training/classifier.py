"""`--mode=train_classifier`: the noise-conditional classifier of classifier guidance.

    python -m scorejax.main --config=configs/digits.py --workdir=runs/digits --mode=train_classifier

trains `config.classifier` (`scorejax.models.classifier`) on the config's labelled data
with the cross-entropy of p_t(y | x_t), x_t ~ p_t(x_t | x_0), t ~ U(eps, T) under the
config's SDE (`losses.get_classifier_loss_fn`; [SDE] Sec. 5, App. I.4). The run lives in
`CLASSIFIER_DIR` under the workdir (`runs/digits/classifier/`: checkpoints, metrics,
config record), beside the score model it guides, and is trained by the score model's
loop (`training.loop.train`): the same orbax checkpoints with checksums, run lock,
config check on resume (`run_config.check_resume(classifier=True)`: the classifier's
network, the data and the SDE may not change), divergence guard, MetricsWriter and
bit-exact resume. At the end the accuracy of the EMA parameters on the test split at a
few noise levels is written to `classifier/accuracy.json` (and the metrics).

`load_classifier_log_prob_fn(config, classifier_workdir)` restores it as
`log_prob_fn(x, t) -> (B, C)` for `scorejax.controllable.classifier_guided_score`.
"""

from __future__ import annotations

import functools
import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np

from scorejax import data, losses
from scorejax.config_check import ConfigError
from scorejax import sde as sde_lib
from scorejax.models.classifier import build_classifier, get_classifier_log_prob_fn
from scorejax.report.writer import MetricsWriter
from scorejax.training import checkpoint, optim, parallel, run_config, run_lock
from scorejax.training.loop import TrainSettings, train
from scorejax.training.setup import Components, SampleSettings, init_state

log = logging.getLogger(__name__)
Array = jax.Array

CLASSIFIER_DIR = "classifier"
ACCURACY_FILE = "accuracy.json"
# Fractions of T at which the test accuracy is reported (t = max(fraction T, eps)).
ACCURACY_TIMES = (0.0, 0.25, 0.5, 0.75, 1.0)


def classifier_workdir(workdir: str) -> str:
  """Where `--mode=train_classifier --workdir=workdir` keeps the classifier's run."""
  return os.path.join(workdir, CLASSIFIER_DIR)


def build_classifier_components(config) -> Components:
  """SDE, classifier, its optimizer and loss, data shape and scalers (`config.classifier`)."""
  sde = sde_lib.sde_from_config(config)
  model = build_classifier(config)
  c = config.classifier
  eps = float(c.eps)
  return Components(
      sde=sde, model=model, continuous=True,
      optimizer=optim.optimizer_from_config(c.optim, int(c.n_iters)),
      learning_rate=optim.schedule_from_config(c.optim, int(c.n_iters)),
      loss_fn=losses.get_classifier_loss_fn(sde, model, train=True, eps=eps),
      eval_loss_fn=losses.get_classifier_loss_fn(sde, model, train=False, eps=eps),
      data_shape=data.get_data_shape(config), centered=bool(config.data.centered),
      scaler=data.get_data_scaler(config), inverse_scaler=data.get_data_inverse_scaler(config))


def classifier_settings(config) -> TrainSettings:
  """The classifier's schedule (`config.classifier.*`), with no sample grids."""
  c = config.classifier
  return TrainSettings(
      seed=int(config.seed), n_iters=int(c.n_iters), batch_size=int(c.batch_size),
      ema_rate=float(c.ema_rate), log_freq=int(c.log_freq), eval_freq=int(c.eval_freq),
      snapshot_freq=int(c.snapshot_freq),
      snapshot_freq_for_preemption=int(c.snapshot_freq_for_preemption), snapshot_sampling=False,
      samples=SampleSettings.from_config(config))


def _labelled_config(config):
  """`config` with the classifier's batch size as the training batch size (for the data)."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.training.batch_size = int(config.classifier.batch_size)
  return config


def train_classifier(config, workdir: str, *, allow_config_change: bool = False):
  """Trains `config.classifier` in `classifier_workdir(workdir)`; returns the final state.

  Resumes like `training.train_and_evaluate` (same lock, checks and checkpoints);
  then writes the test accuracy (`test_accuracy`) to `accuracy.json`.
  """
  parallel.maybe_initialize_distributed()
  s = classifier_settings(config)
  parallel.check_global_batch(s.batch_size, parallel.data_mesh())
  run_dir = classifier_workdir(workdir)
  os.makedirs(run_dir, exist_ok=True)
  with run_lock.workdir_lock(run_dir):
    if checkpoint.saved_steps(os.path.join(run_dir, "checkpoints")):
      run_config.check_resume(run_dir, config, allow_config_change=allow_config_change,
                              classifier=True)
    c = build_classifier_components(config)
    labelled = _labelled_config(config)
    eval_batches = (functools.partial(data.eval_batches, labelled, "test", with_labels=True)
                    if s.eval_freq > 0 else None)
    state = train(c, s, run_dir, batch_fn=data.make_train_batch_fn(labelled, with_labels=True),
                  eval_batches=eval_batches,
                  on_start=lambda step: run_config.record_config(run_dir, config, step))
    accuracy = test_accuracy(c, state.ema_params, state.model_state,
                             data.eval_batches(labelled, "test", with_labels=True,
                                               drop_remainder=False))
    if jax.process_index() == 0:
      with open(os.path.join(run_dir, ACCURACY_FILE), "w") as f:
        json.dump({"step": s.n_iters, "accuracy": accuracy}, f, indent=2)
      writer = MetricsWriter(run_dir, enabled=True, resume_step=s.n_iters)
      writer.scalars(s.n_iters, {f"test_accuracy_t{k}": v for k, v in accuracy.items()})
      writer.close()
    log.info("classifier test accuracy by t/T: %s", accuracy)
    return state


def test_accuracy(c: Components, params, model_state, batches, *,
                  times=ACCURACY_TIMES) -> dict[str, float]:
  """{'t/T': accuracy of argmax p_t(y | x_t) on the batches}, x_t noised with a fixed key."""
  log_prob_fn = get_classifier_log_prob_fn(c.sde, c.model, {"params": params, **model_state})
  eps = 1e-5

  @jax.jit
  def correct(x0, y, t, key):
    x0 = c.scaler(x0)
    mean, std = c.sde.marginal_prob(x0, jnp.full((x0.shape[0],), t))
    xt = mean + sde_lib.batch_broadcast(std, x0) * jax.random.normal(key, x0.shape)
    return jnp.sum(jnp.argmax(log_prob_fn(xt, jnp.full((x0.shape[0],), t)), -1) == y)

  hits, total = np.zeros(len(times)), 0
  for b, batch in enumerate(batches):
    total += len(batch["label"])
    for i, frac in enumerate(times):
      t = max(frac * c.sde.T, eps)
      key = jax.random.fold_in(jax.random.key(i), b)
      hits[i] += int(correct(jnp.asarray(batch["image"]), jnp.asarray(batch["label"]), t, key))
  return {f"{frac:g}": float(h / max(total, 1)) for frac, h in zip(times, hits)}


def load_classifier(config, classifier_dir: str) -> tuple[Components, dict]:
  """(components, EMA variables) of the newest classifier checkpoint in `classifier_dir`.

  The run's recorded config must agree with `config` on what defines the classifier
  (its network, the data, the SDE); raises `run_config.ConfigMismatchError` otherwise,
  and ConfigError (naming the command that trains it) when there is none.
  """
  if not checkpoint.saved_steps(os.path.join(classifier_dir, "checkpoints")):
    raise ConfigError(
        f"no classifier checkpoint under {classifier_dir}/checkpoints; train one with "
        f"`python -m scorejax.main --config=... --workdir={os.path.dirname(classifier_dir) or '.'} "
        "--mode=train_classifier`, or point config.sampling.classifier_workdir at a trained one")
  recorded = run_config.read_record(classifier_dir)
  if recorded is not None:
    changes = run_config.classify_changes(
        recorded, run_config.config_as_dict(config),
        identity=run_config.CLASSIFIER_IDENTITY_FIELDS,
        exceptions=run_config.CLASSIFIER_IDENTITY_EXCEPTIONS,
        harmless=run_config.CLASSIFIER_HARMLESS_FIELDS)
    if changes["refused"]:
      raise run_config.ConfigMismatchError(
          f"the classifier in {classifier_dir} was trained with a different network, data or "
          f"SDE: {'; '.join(f'config.{f}: {a!r} -> {b!r}' for f, a, b in changes['refused'])}. "
          "Use the recorded values or retrain the classifier")
  c = build_classifier_components(config)
  rep = parallel.replicated(parallel.data_mesh())
  # Only the structure is needed (compiling the initializers would take longer than the restore).
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep),
                          jax.eval_shape(lambda k: init_state(c, k), jax.random.key(0)))
  manager = checkpoint.make_manager(os.path.join(classifier_dir, "checkpoints"),
                                    snapshot_freq=int(config.classifier.snapshot_freq),
                                    read_only=True)
  try:
    restored = checkpoint.restore_latest(manager, abstract, set_aside=False)
  finally:
    manager.close()
  if restored is None:
    raise FileNotFoundError(f"no readable classifier checkpoint under {classifier_dir}")
  state, _ = restored
  return c, {"params": state.ema_params, **state.model_state}


def load_classifier_log_prob_fn(config, classifier_dir: str):
  """`log_prob_fn(x, t) -> (B, C)` of the newest classifier checkpoint in `classifier_dir`
  (EMA parameters; `load_classifier`), for `controllable.classifier_guided_score`."""
  c, variables = load_classifier(config, classifier_dir)
  return get_classifier_log_prob_fn(c.sde, c.model, variables)
