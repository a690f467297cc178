"""Guidance's training side: label-conditional networks, label dropout, the noise-conditional
classifier and its loss, labelled batches, and `--mode=sample`'s task inputs (masks, checks).

Fast: tiny networks, no training (the digits demonstrations are the slow tests of
tests/test_digits_guidance.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scorejax import config_check, data, losses, models
from scorejax import sde as sde_lib
from scorejax.evaluation import tasks
from scorejax.models import classifier as classifier_lib


def _digits(**changes):
  from configs import digits  # pylint: disable=import-outside-toplevel
  config = digits.get_config("smoke")
  for dotted, value in changes.items():
    section, field = dotted.split("__")
    config[section][field] = value
  return config


@pytest.mark.parametrize("name", ["ncsnpp", "ddpm", "mlp"])
def test_label_conditional_networks_add_only_the_class_embedding(name):
  """num_classes > 0 adds one (num_classes + 1, F) table; unconditional networks keep their params."""
  config, plain = _digits(model__num_classes=10), _digits()
  for c in (config, plain):
    c.model.name = name
    c.model.nf = 32  # the DDPM U-Net's GroupNorm has 32 groups
  x, labels = jnp.zeros((2, 16, 16, 1)), jnp.array([10, 300])
  shapes = lambda c: jax.eval_shape(lambda: models.get_model(c).init(  # noqa: E731
      {"params": jax.random.key(0)}, x, labels, train=False))["params"]
  conditional, unconditional = shapes(config), shapes(plain)
  assert set(conditional) - set(unconditional) == {"class_embedding"}
  table = conditional["class_embedding"]["label_embedding"]["embedding"]
  assert table.shape[0] == 11
  assert jax.tree.map(lambda a: a.shape, {k: v for k, v in conditional.items()
                                          if k != "class_embedding"}) == \
      jax.tree.map(lambda a: a.shape, unconditional)


def test_label_conditional_mlp_null_label_is_the_unconditional_network():
  """-1 and None select the null row; a class label changes the output of its example only."""
  config, plain = _digits(model__num_classes=10), _digits()
  config.model.name = plain.model.name = "mlp"
  x = jax.random.normal(jax.random.key(0), (3, 16, 16, 1))
  labels = jnp.array([10.0, 300.0, 900.0])
  net, plain_net = models.get_model(config), models.get_model(plain)
  v = net.init({"params": jax.random.key(1)}, x, labels, train=False)
  params = dict(v["params"])
  table = params["class_embedding"]["label_embedding"]["embedding"]
  assert float(jnp.abs(table).max()) == 0.0  # starts as the unconditional network
  params["class_embedding"] = {"label_embedding": {"embedding": jax.random.normal(
      jax.random.key(2), table.shape).at[-1].set(0.0)}}
  params["Dense_9"] = jax.tree.map(lambda a: a + 0.1, params["Dense_9"])  # a non-zero last layer
  v = {"params": params}
  base = jax.jit(lambda p: plain_net.apply(
      {"params": {k: a for k, a in p.items() if k != "class_embedding"}}, x, labels,
      train=False))(params)
  apply = jax.jit(lambda v, y: net.apply(v, x, labels, train=False, class_labels=y))
  none = jax.jit(lambda v: net.apply(v, x, labels, train=False))(v)
  null = apply(v, jnp.array([-1, -1, -1]))
  cond = apply(v, jnp.array([0, 3, -1]))
  np.testing.assert_allclose(none, base, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(null, base, rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(cond[:2] - base[:2]).max()) > 1e-3
  np.testing.assert_allclose(cond[2], base[2], rtol=1e-5, atol=1e-6)


def test_label_dropout_rate_and_null_label():
  labels = jnp.arange(20000) % 10
  dropped = losses.drop_labels(jax.random.key(0), labels, 0.2)
  frac = float(jnp.mean(dropped == losses.NULL_LABEL))
  assert abs(frac - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 20000), frac
  kept = dropped != losses.NULL_LABEL
  assert bool(jnp.all(dropped[kept] == labels[kept]))
  assert losses.drop_labels(jax.random.key(0), labels, 0.0) is labels


def test_classifier_logprob_and_loss():
  """WRN-10-1: log p_t(c | x) normalized per example; the loss is the cross-entropy of the labels."""
  config = _digits()
  sde = sde_lib.sde_from_config(config)
  net = classifier_lib.build_classifier(config)
  assert net.embedding_type == "positional" and net.depth == 10  # 'auto' for the VP SDE
  x = jax.random.normal(jax.random.key(0), (4, 16, 16, 1))
  t = jnp.array([0.01, 0.3, 0.6, 1.0])
  y = jnp.array([0, 1, 2, 3])

  # Parameters drawn here: compiling flax's initializers takes longer than the test.
  shapes = jax.eval_shape(lambda: net.init({"params": jax.random.key(1)}, x,
                                           sde.model_labels(t, True), train=False))
  rng = np.random.default_rng(0)
  v = jax.tree.map(lambda a: jnp.asarray(0.1 * rng.standard_normal(a.shape), a.dtype), shapes)

  @jax.jit  # one program: log-probabilities and loss
  def run(v):
    log_p = classifier_lib.get_classifier_log_prob_fn(sde, net, v)(x, t)
    loss, _ = losses.get_classifier_loss_fn(sde, net, train=False)(
        v["params"], {}, jax.random.key(3), {"image": x, "label": y})
    return log_p, loss

  log_p, loss = run(v)
  assert log_p.shape == (4, 10)
  np.testing.assert_allclose(jnp.exp(log_p).sum(-1), 1.0, rtol=1e-5)
  assert np.isfinite(float(loss)) and float(loss) > 0.0
  with pytest.raises(ValueError, match="labelled batches"):
    losses.get_classifier_loss_fn(sde, net)(v["params"], {}, jax.random.key(3), x)


def test_digits_batches_carry_their_labels():
  """Labelled batches: each image with its own digit (the images are scikit-learn's, labels too)."""
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  config = _digits()
  batch = data.make_train_batch_fn(config, with_labels=True)(0)
  assert set(batch) == {"image", "label"} and batch["label"].dtype == np.int32
  assert batch["image"].shape == (8, 16, 16, 1) and batch["label"].shape == (8,)
  plain = data.make_train_batch_fn(config)(0)
  np.testing.assert_array_equal(plain, batch["image"])  # labels change nothing else
  digits = load_digits()
  test_images = data.open_digits_source("test", 8)[..., 0].astype(np.float64) / 255.0
  test_labels = data.digits_labels("test")
  originals = digits.images / 16.0
  for i in range(5):
    j = int(np.argmin(((originals - test_images[i]) ** 2).sum((1, 2))))
    assert digits.target[j] == test_labels[i]


def test_masks():
  shape = (2, 8, 8, 1)
  half = tasks.make_mask("half", shape)
  assert half[:, :4].min() == 1.0 and half[:, 4:].max() == 0.0
  box = tasks.make_mask("box", shape, fraction=0.5)
  assert box.sum() == 2 * (64 - 16) and box[:, 2:6, 2:6].max() == 0.0
  rnd = tasks.make_mask("random", shape, fraction=0.25, key=jax.random.key(0))
  assert rnd.shape == (2, 8, 8, 1) and 0.5 < rnd.mean() < 0.95
  with pytest.raises(ValueError, match="not one of"):
    tasks.make_mask("ring", shape)


@pytest.mark.parametrize("fields, expected", [
    ({"sampling__task": "superres"}, ["config.sampling.task='superres'", "inpaint"]),
    ({"sampling__task": "inpaint", "sampling__mask": "ring"}, ["config.sampling.mask='ring'", "half"]),
    ({"sampling__task": "colorize"}, ["colour images", "DIGITS"]),
    ({"sampling__task": "class", "sampling__guidance": "classifier_free"},
     ["label-conditional", "--config.model.num_classes=10"]),
    ({"sampling__task": "class", "sampling__class_labels": [3, 12]}, ["class_labels", "[12]"]),
    ({"sampling__task": "inpaint", "sampling__inpaint_method": "magic"}, ["inpaint_method", "smc"]),
    ({"sampling__task": "inpaint", "sampling__method": "ode"}, ["sampling.method='ode'", "pc"]),
    ({"training__label_dropout": 0.1}, ["label_dropout", "num_classes"]),
    ({"model__num_classes": 10, "training__continuous": False}, ["continuous=True"]),
    ({"classifier__depth": 12}, ["classifier.depth=12", "6 n + 4"]),
])
def test_task_and_class_fields_are_checked(fields, expected):
  with pytest.raises(config_check.ConfigError) as e:
    config_check.validate(_digits(**fields))
  for text in expected:
    assert text in str(e.value), (text, str(e.value))


def test_task_settings_from_config():
  config = _digits(sampling__task="class", sampling__samples_per_class=2)
  ts = tasks.TaskSettings.from_config(config, "/tmp/run")
  assert ts.classifier_dir == "/tmp/run/classifier"
  np.testing.assert_array_equal(ts.labels(), np.repeat(np.arange(10), 2))
  config_check.validate(_digits(model__num_classes=10, training__label_dropout=0.1,
                                sampling__task="class", sampling__guidance="classifier_free"))


def test_classifier_run_resume_rules():
  """A classifier run refuses changes of its network, data or SDE; the score model's are harmless."""
  from scorejax.training import run_config  # pylint: disable=import-outside-toplevel
  record = run_config.config_as_dict(_digits())
  kinds = dict(identity=run_config.CLASSIFIER_IDENTITY_FIELDS,
               exceptions=run_config.CLASSIFIER_IDENTITY_EXCEPTIONS,
               harmless=run_config.CLASSIFIER_HARMLESS_FIELDS)

  def changes(**fields):
    return {k: [f for f, _, _ in v] for k, v in run_config.classify_changes(
        record, run_config.config_as_dict(_digits(**fields)), **kinds).items() if v}

  assert changes(classifier__depth=16) == {"refused": ["classifier.depth"]}
  assert changes(model__beta_max=10.0) == {"refused": ["model.beta_max"]}
  assert changes(model__nf=64, training__batch_size=32) == {
      "harmless": ["model.nf", "training.batch_size"]}
  assert changes(classifier__batch_size=32) == {"needs_flag": ["classifier.batch_size"]}
  assert changes(classifier__n_iters=900) == {"harmless": ["classifier.n_iters"]}
