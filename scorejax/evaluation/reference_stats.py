"""`--mode=fid_stats`: reference statistics of a dataset split for FID / KID (or the
offline digits metric).

    python -m scorejax.main --mode=fid_stats --config=configs/ve_cifar10.py --split=train \
        --out=stats/cifar10_train.npz --inception_weights=pt_inception-2015-12-05-6726825d.pth
    python -m scorejax.main --mode=fid_stats --config=configs/digits.py --split=train \
        --features=digits_classifier --out=stats/digits_train_classifier.npz

The data are read from the config's data section (`data.dataset`, `data.image_size`,
TFDS `data.data_dir`, ...), as uint8 images exactly as stored (no dequantization,
no flips), in dataset order, in global batches split over every device of every
process, with a progress bar on process 0.

The .npz holds
  mu (D,), sigma (D, D)   mean and unbiased covariance of the features (float64),
  features (N, D)         the features themselves, for KID (float32; --nosave_features drops them),
  logits (N, K)           the classifier's logits (Inception: IS of the data; omitted with
                          --nosave_features),
  kind, dataset, split, image_size, num_examples   metadata.
Features: 'inception' = pool3 (D = 2048) of the FID Inception
(`scorejax.evaluation.metrics.inception`; grayscale images are repeated to 3 channels),
which needs pytorch-fid's weights (--inception_weights or $SCOREJAX_INCEPTION_WEIGHTS);
'digits_classifier' = the 64-d penultimate features of the offline digits classifier
(`scorejax.evaluation.metrics.digits_classifier`), for the Fréchet distance in
digits-classifier feature space (not FID).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from scorejax import data
from scorejax.evaluation import progress as progress_lib
from scorejax.evaluation.metrics import digits_classifier, inception
from scorejax.evaluation.metrics.fid import feature_statistics
from scorejax.training import parallel

log = logging.getLogger(__name__)

FEATURE_KINDS = ("inception", "digits_classifier")


class InceptionWeightsUnavailable(FileNotFoundError):
  """No FID Inception weights were given (offline); FID/IS/KID cannot be computed."""


def inception_weights_path(path: str | None = None) -> str:
  """The FID Inception weight file: `path` (e.g. config.eval.inception_weights) or the env var.

  Raises InceptionWeightsUnavailable (with instructions) when none is set or the file is missing.
  """
  path = path or os.environ.get(inception.WEIGHTS_ENV)
  if not path:
    raise InceptionWeightsUnavailable(
        "FID/IS/KID need the FID Inception weights, and none were given: set "
        f"${inception.WEIGHTS_ENV}=/path/to/{inception.WEIGHTS_FILENAME} or "
        "--config.eval.inception_weights=PATH (--mode=fid_stats: --inception_weights=PATH). "
        + inception._HOW_TO_GET_WEIGHTS)  # pylint: disable=protected-access
  if not os.path.isfile(path):
    raise InceptionWeightsUnavailable(f"the FID Inception weight file {path!r} does not exist. "
                                      + inception._HOW_TO_GET_WEIGHTS)  # pylint: disable=protected-access
  return path


class FeatureExtractor:
  """`extractor(images) -> (features, logits)` as host numpy arrays, gathered on every process.

  `images` is a uint8 (N, H, W, C) batch: a host array (identical on every process)
  or a global jax.Array; it is processed `batch_size` at a time (a multiple of the
  device count; the last chunk is zero-padded), sharded over the 'data' mesh axis,
  with a progress bar over the chunks (process 0).
  """

  def __init__(self, kind: str, fn: Callable, params: Any, *, batch_size: int, mesh=None):
    self.kind = kind
    self.mesh = parallel.data_mesh() if mesh is None else mesh
    n_dev = self.mesh.devices.size
    self.batch_size = -(-int(batch_size) // n_dev) * n_dev
    self._fn = fn  # jitted fn(params, images); params are an argument, not baked-in constants
    self.params = parallel.replicate(jax.tree.map(np.asarray, params), self.mesh)

  def _global(self, chunk: np.ndarray) -> jax.Array:
    sharding = parallel.batch_sharded(self.mesh)
    return jax.make_array_from_callback(chunk.shape, sharding, lambda idx: chunk[idx])

  def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(images, jax.Array):
      images = to_host(images)
    images = np.asarray(images)
    n_dev = self.mesh.devices.size
    bs = min(self.batch_size, -(-images.shape[0] // n_dev) * n_dev)  # small inputs: no big padding
    feats, logits = [], []
    for start in progress_lib.bar(range(0, images.shape[0], bs), desc=f"{self.kind} features",
                                  unit="batch"):
      chunk = images[start:start + bs]
      m = chunk.shape[0]
      if m < bs:
        chunk = np.concatenate([chunk, np.zeros((bs - m,) + chunk.shape[1:], chunk.dtype)])
      f, l = self.global_batch(self._global(chunk))
      feats.append(f[:m])
      logits.append(l[:m])
    return np.concatenate(feats), np.concatenate(logits)

  def global_batch(self, images: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """Features of one global batch (its size a multiple of the device count)."""
    f, l = self._fn(self.params, images)
    return to_host(f), to_host(l)


def to_host(x: jax.Array) -> np.ndarray:
  """A (possibly multi-process) global array as one numpy array on every process."""
  if x.is_fully_addressable:
    return np.asarray(x)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def make_extractor(kind: str, *, image_size: int | None = None,
                   inception_weights: str | None = None, batch_size: int = 200,
                   cache_dir: str | None = None) -> FeatureExtractor:
  """The feature extractor of `kind` ('inception' or 'digits_classifier').

  'inception' loads `inception_weights` (default $SCOREJAX_INCEPTION_WEIGHTS) and
  raises InceptionWeightsUnavailable when there are none; 'digits_classifier' trains
  (once, cached in `cache_dir`) the classifier for images of `image_size`.
  """
  if kind == "inception":
    params = inception.load_params(inception_weights_path(inception_weights))
  elif kind == "digits_classifier":
    if image_size is None:
      raise ValueError("the digits_classifier features need the image_size of the data")
    params, info = digits_classifier.load_or_train(image_size, cache_dir)
    log.info("digits classifier: test accuracy %.3f", info["test_accuracy"])
  else:
    raise ValueError(f"unknown feature kind {kind!r}; choose one of {FEATURE_KINDS}")
  return FeatureExtractor(kind, _FEATURE_FNS[kind], params, batch_size=batch_size)


def _inception_features(params, images):
  if images.shape[-1] == 1:  # grayscale -> RGB, as usual for FID on MNIST-like data
    images = jnp.repeat(images, 3, axis=-1)
  return inception.features(params, images)


# One jitted function per kind at module level, so every extractor shares its compilations.
_FEATURE_FNS = {"inception": jax.jit(_inception_features),
                "digits_classifier": jax.jit(digits_classifier.apply)}


def save_stats(path: str, feats: np.ndarray, logits: np.ndarray | None = None, *,
               save_features: bool = True, **meta) -> dict:
  """Writes mu/sigma (and features, logits) atomically to `path`; returns the arrays written."""
  mu, sigma = feature_statistics(feats)
  out = {"mu": mu, "sigma": sigma, "num_examples": np.asarray(feats.shape[0])}
  if save_features:
    out["features"] = np.asarray(feats, np.float32)
    if logits is not None:
      out["logits"] = np.asarray(logits, np.float32)
  out.update({k: np.asarray(v) for k, v in meta.items()})
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
      np.savez(f, **out)
    os.replace(tmp, path)
  return out


def load_stats(path: str) -> dict:
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def dataset_features(source: data.sources.ImageSource, extractor: FeatureExtractor, *,
                     max_examples: int | None = None, progress: bool = True, name: str = "data"
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Features of the uint8 images of `source` (a split, `data.open_image_source`), in order,
  over all devices and processes; `name` labels the progress bar."""
  n = len(source) if max_examples is None else min(len(source), int(max_examples))
  bs = extractor.batch_size
  positions = data.process_positions(bs, jax.process_index(), jax.process_count())
  sharding = parallel.batch_sharded(extractor.mesh)
  example = np.asarray(source[0])
  feats, logits = [], []
  for start in tqdm.trange(0, n, bs, desc=f"{extractor.kind} features ({name})",
                           disable=not progress or jax.process_index() != 0, dynamic_ncols=True):
    local = np.zeros((positions.size,) + example.shape, np.uint8)
    for j, pos in enumerate(start + positions):
      if pos < n:
        local[j] = np.asarray(source[int(pos)])
    f, l = extractor.global_batch(jax.make_array_from_process_local_data(sharding, local))
    m = min(bs, n - start)
    feats.append(f[:m])
    logits.append(l[:m])
  return np.concatenate(feats), np.concatenate(logits)


def compute_reference_stats(config, split: str, out: str, *, kind: str = "inception",
                            inception_weights: str | None = None, batch_size: int = 200,
                            max_examples: int | None = None, save_features: bool = True,
                            cache_dir: str | None = None, progress: bool = True) -> dict:
  """Computes and writes the reference statistics of `split` to `out`; returns them.

  The config edge of `--mode=fid_stats`: reads config.data (the dataset) and, without
  `inception_weights`, config.eval.inception_weights.
  """
  extractor = make_extractor(
      kind, image_size=int(config.data.image_size),
      inception_weights=inception_weights or config.eval.get("inception_weights"),
      batch_size=batch_size, cache_dir=cache_dir)
  feats, logits = dataset_features(data.open_image_source(config, split), extractor,
                                   max_examples=max_examples, progress=progress, name=split)
  return save_stats(out, feats, logits, save_features=save_features, kind=kind,
                    dataset=str(config.data.dataset), split=split,
                    image_size=int(config.data.image_size))
