"""A small CNN classifier of the offline DIGITS dataset, whose features define an
offline sample-quality metric: the Fréchet distance in digits-classifier feature space.

This is NOT the FID: the FID is defined by the FID Inception network
(`scorejax.evaluation.metrics.inception`), whose weights cannot be downloaded offline. For the
offline quick-start on scikit-learn's digits, `evaluation.loop` instead reports

    fd_digits_classifier = FrechetDistance(N(mu_data, S_data), N(mu_model, S_model))

with mu, S the mean and covariance of this classifier's penultimate-layer features
(64-d), the same formula as FID (`scorejax.evaluation.metrics.fid.frechet_distance`) in another
feature space. Its values are not comparable to FID numbers, only to each other
(same image size, same classifier version).

The network (pure JAX over a params dict; images are resized to 16x16 first):
conv3x3(16)-ReLU-avgpool2 -> conv3x3(32)-ReLU-avgpool2 -> dense(64)-ReLU [features]
-> dense(10) [logits]. It is trained with Adam on the DIGITS 'train' split (1500
images at the config's image size) for `TRAIN_STEPS` steps from a fixed seed, in a
few seconds on a CPU, reaches about 97% accuracy on the 'test' split, and is cached
as an .npz (`load_or_train`).
"""

from __future__ import annotations

import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

log = logging.getLogger(__name__)
Array = jax.Array

VERSION = 1          # bump when the architecture or training recipe changes (invalidates caches)
INPUT_SIZE = 16      # images are resized to this before the network
FEATURE_DIM = 64
NUM_CLASSES = 10
TRAIN_STEPS = 300
TRAIN_BATCH = 128
LEARNING_RATE = 3e-3
SEED = 0
CACHE_ENV = "SCOREJAX_CACHE_DIR"


def default_cache_dir() -> str:
  return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "scorejax")


def cache_path(image_size: int, cache_dir: str | None = None) -> str:
  return os.path.join(cache_dir or default_cache_dir(),
                      f"digits_classifier_v{VERSION}_size{int(image_size)}.npz")


def digits_labels() -> dict[str, np.ndarray]:
  """Labels of the DIGITS 'train'/'test' splits, in the order `data.open_digits_source` uses."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  from scorejax.data import sources
  target = load_digits().target.astype(np.int32)
  order = np.random.default_rng(sources.DIGITS_SPLIT_SEED).permutation(len(target))
  return {"train": target[order[:sources.DIGITS_NUM_TRAIN]],
          "test": target[order[sources.DIGITS_NUM_TRAIN:]]}


def init_params(key: Array) -> dict:
  k1, k2, k3, k4 = jax.random.split(key, 4)
  he = lambda k, shape, fan_in: jax.random.normal(k, shape) * jnp.sqrt(2.0 / fan_in)
  flat = (INPUT_SIZE // 4) ** 2 * 32
  return {
      "conv1": {"kernel": he(k1, (3, 3, 1, 16), 9), "bias": jnp.zeros(16)},
      "conv2": {"kernel": he(k2, (3, 3, 16, 32), 9 * 16), "bias": jnp.zeros(32)},
      "dense": {"kernel": he(k3, (flat, FEATURE_DIM), flat), "bias": jnp.zeros(FEATURE_DIM)},
      "head": {"kernel": he(k4, (FEATURE_DIM, NUM_CLASSES), FEATURE_DIM) * 0.5,
               "bias": jnp.zeros(NUM_CLASSES)},
  }


def _prepare(images: Array) -> Array:
  """uint8 (B, H, W, C) -> float (B, 16, 16, 1) in [0, 1]; RGB is averaged to gray."""
  x = images.astype(jnp.float32) / 255.0
  x = jnp.mean(x, axis=-1, keepdims=True)
  if x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
    x = jax.image.resize(x, (x.shape[0], INPUT_SIZE, INPUT_SIZE, 1), "linear", antialias=True)
  return x


def _conv(p, x):
  y = jax.lax.conv_general_dilated(x, p["kernel"], (1, 1), "SAME",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return jax.nn.relu(y + p["bias"].reshape(1, 1, 1, -1))


def _avg_pool2(x):
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def apply(params: dict, images: Array) -> tuple[Array, Array]:
  """(features (B, 64), logits (B, 10)) of uint8 images (B, H, W, 1 or 3)."""
  x = _prepare(images)
  x = _avg_pool2(_conv(params["conv1"], x))
  x = _avg_pool2(_conv(params["conv2"], x))
  x = x.reshape(x.shape[0], -1)
  feats = jax.nn.relu(x @ params["dense"]["kernel"] + params["dense"]["bias"][None])
  return feats, feats @ params["head"]["kernel"] + params["head"]["bias"][None]


features = jax.jit(apply)


def train(image_size: int) -> tuple[dict, dict]:
  """Trains the classifier on the DIGITS 'train' split at `image_size`; returns (params, info)."""
  from scorejax.data import sources  # pylint: disable=g-import-not-at-top

  x_train = sources.open_digits_source("train", image_size)
  x_test = sources.open_digits_source("test", image_size)
  labels = digits_labels()
  y_train = labels["train"]
  tx = optax.adam(LEARNING_RATE)
  params = init_params(jax.random.key(SEED))

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      return optax.softmax_cross_entropy_with_integer_labels(apply(p, x)[1], y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  # A fixed sequence of shuffled minibatches, epoch after epoch.
  rng = np.random.default_rng(SEED)
  epochs = -(-TRAIN_STEPS * TRAIN_BATCH // len(x_train))
  order = np.concatenate([rng.permutation(len(x_train)) for _ in range(epochs)])
  opt_state = tx.init(params)
  for i in range(TRAIN_STEPS):
    idx = order[i * TRAIN_BATCH:(i + 1) * TRAIN_BATCH]
    params, opt_state, loss = step(params, opt_state, jnp.asarray(x_train[idx]),
                                   jnp.asarray(y_train[idx]))
  accuracy = float(np.mean(np.argmax(np.asarray(features(params, jnp.asarray(x_test))[1]), -1)
                           == labels["test"]))
  info = {"version": VERSION, "image_size": int(image_size), "train_steps": TRAIN_STEPS,
          "final_train_loss": float(loss), "test_accuracy": accuracy}
  return jax.tree.map(np.asarray, params), info


def _flatten(params: dict) -> dict[str, np.ndarray]:
  return {f"{layer}/{leaf}": np.asarray(v) for layer, d in params.items() for leaf, v in d.items()}


def _unflatten(arrays) -> dict:
  params: dict = {}
  for key in arrays.files:
    if "/" in key:
      layer, leaf = key.split("/")
      params.setdefault(layer, {})[leaf] = jnp.asarray(arrays[key])
  return params


def load_or_train(image_size: int, cache_dir: str | None = None) -> tuple[dict, dict]:
  """The classifier for `image_size` from the cache, training (and caching) it if absent.

  Returns (params, info) where info holds the test accuracy. The cache file is
  written atomically (a temporary file, then `os.replace`).
  """
  path = cache_path(image_size, cache_dir)
  if os.path.isfile(path):
    with np.load(path) as f:
      return _unflatten(f), json.loads(str(f["info"]))
  log.info("training the digits classifier (image size %d) for the offline Fréchet distance; "
           "cached at %s", image_size, path)
  params, info = train(image_size)
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
      np.savez(f, info=np.asarray(json.dumps(info)), **_flatten(params))
    os.replace(tmp, path)
  return jax.tree.map(jnp.asarray, params), info
