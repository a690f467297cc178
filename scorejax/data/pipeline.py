"""Stateless input pipelines: the batch at training step s is a pure function of (seed, s).

Index arithmetic instead of an iterator state: training draws the examples of
global positions `s * B, ..., s * B + B - 1` of an endless stream made of epochs,
each epoch a permutation of the dataset seeded by `(seed, epoch)`; batches run
across epoch boundaries (like score_sde's `repeat().shuffle().batch()`). The flip
and the dequantization noise of the example at position j of step s are seeded by
`(seed, tag, s, j)`. Hence

* resuming at step s (`start_step=s`) gives exactly the batches an uninterrupted
  run sees from step s on — nothing about the pipeline needs checkpointing;
* process p of P reads only positions `[p * B/P, (p + 1) * B/P)` of each global
  batch, and the processes' slices concatenate to the single-process batch
  (`parallel.global_batch` assembles them on the devices).

Batches are built by a thread pool a few steps ahead of the consumer
(`prefetch_map`), so loading and decoding overlap the training step.
`make_train_batch_fn` exposes the underlying `batch_fn(step)` for direct use.

Datasets (`config.data.dataset`): the TFDS datasets of `sources.IMAGE_DATASETS`
('CIFAR10', 'SVHN', 'MNIST', 'CELEBA', 'LSUN'), the offline 'DIGITS' (scikit-learn's
8x8 digits, upscaled) and 'TOY2D' (a 2-D set of `scorejax.toy.datasets.TOY_2D` named by
`config.data.toy_name`, sampled afresh at every step from `fold_in(key(seed), step)`;
its 'test' split is a fixed pool of `TOY_NUM_EVAL` points).

Config fields read (here and only here): data.dataset, data.image_size,
data.num_channels, data.random_flip, data.uniform_dequantization, data.category
(LSUN), data.toy_name (TOY2D), data.data_dir (optional; None = TFDS default),
training.batch_size, eval.batch_size, seed (a non-negative integer).
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import itertools
import os
import sys
from typing import Any, Callable, Iterable, Iterator, NamedTuple, TypeVar

import jax
import numpy as np

from scorejax.toy import datasets as toy_datasets
from scorejax.data import preprocess, sources

# Purpose tags, mixed into every seed so that no two random streams coincide.
_SHUFFLE, _TRAIN_AUG, _EVAL_AUG, _TOY_TRAIN, _TOY_EVAL = range(5)

TOY_NUM_EVAL = 10_000
OFFLINE_DATASETS = ("DIGITS", "TOY2D")

T = TypeVar("T")


class DatasetInfo(NamedTuple):
  """`num_train`: training examples (None for the endless TOY2D stream); `data_shape`: one example's shape."""
  num_train: int | None
  data_shape: tuple[int, ...]


# ----------------------------------------------------------------------------- index arithmetic

def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The order in which epoch `epoch` visits the examples (a permutation of range(num_examples))."""
  return np.random.default_rng([seed, _SHUFFLE, epoch]).permutation(num_examples)


def process_positions(batch_size: int, process_index: int, process_count: int) -> np.ndarray:
  """Positions within the global batch that process `process_index` of `process_count` reads."""
  if batch_size % process_count:
    raise ValueError(f"the global batch size {batch_size} must be divisible by the number of "
                     f"processes ({process_count})")
  local = batch_size // process_count
  return np.arange(process_index * local, (process_index + 1) * local)


def example_indices(positions: np.ndarray, num_examples: int,
                    permutation: Callable[[int], np.ndarray] | None) -> np.ndarray:
  """Dataset indices of stream positions: epoch = pos // n, then `permutation(epoch)[pos % n]`.

  `permutation=None` reads the dataset in order, epoch after epoch.
  """
  epochs, offsets = np.divmod(positions, num_examples)
  if permutation is None:
    return offsets
  out = np.empty_like(positions)
  for epoch in np.unique(epochs):
    sel = epochs == epoch
    out[sel] = permutation(int(epoch))[offsets[sel]]
  return out


def make_image_batch_fn(source: sources.ImageSource, *, batch_size: int, seed: int,
                        shuffle: bool, random_flip: bool, uniform_dequantization: bool,
                        augment_tag: int, process_index: int = 0,
                        process_count: int = 1,
                        labels: Callable[[int], int] | None = None) -> Callable[[int], Any]:
  """`batch_fn(step)` -> this process's slice of global batch `step`, float32 (B/P, H, W, C) in [0, 1].

  With `labels` (`label(index)` of the source's examples), the batch is the dict
  `{"image": (B/P, H, W, C) float32, "label": (B/P,) int32}` instead.

  Args:
    source: random-access uint8 images (see `sources`).
    batch_size: global batch size B.
    seed: data seed (shuffling and augmentation).
    shuffle: visit each epoch in the order `epoch_permutation(seed, epoch, n)`;
      otherwise in dataset order.
    random_flip, uniform_dequantization: see `preprocess.augment_example`.
    augment_tag: separates the augmentation noise of different streams (train / eval).
    process_index, process_count: this process and the number of processes.
  """
  n = len(source)
  positions = process_positions(batch_size, process_index, process_count)
  permutation = functools.lru_cache(maxsize=4)(
      lambda epoch: epoch_permutation(seed, epoch, n)) if shuffle else None

  def batch_fn(step: int) -> Any:
    indices = example_indices(step * batch_size + positions, n, permutation)
    images = np.stack([
        preprocess.augment_example(source[i], (seed, augment_tag, step, j), random_flip=random_flip,
                                   uniform_dequantization=uniform_dequantization)
        for i, j in zip(indices, positions)])
    if labels is None:
      return images
    return {"image": images, "label": np.asarray([labels(i) for i in indices], np.int32)}

  return batch_fn


def make_toy_batch_fn(name: str, *, batch_size: int, seed: int, process_index: int = 0,
                      process_count: int = 1) -> Callable[[int], np.ndarray]:
  """`batch_fn(step)` -> this process's slice of `toy_datasets.TOY_2D[name]`'s sample from fold_in(key(seed), step).

  Every process draws the whole global batch (cheap for 2-D data) and keeps its
  slice, so the slices concatenate to the single-process batch.
  """
  sampler = _toy_sampler(name, batch_size)
  positions = process_positions(batch_size, process_index, process_count)

  def batch_fn(step: int) -> np.ndarray:
    with _on_cpu():
      x = sampler(jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _TOY_TRAIN), step))
    return np.asarray(x, np.float32)[positions]

  return batch_fn


def _on_cpu():
  # Toy data are sampled on the host CPU: off the accelerator, and identical on every
  # machine (CPU and GPU transcendental functions may differ in the last bits).
  return jax.default_device(jax.local_devices(backend="cpu")[0])


# One compilation per (name, n), shared by every batch_fn (jax's cache, not ours).
_sample_toy = jax.jit(toy_datasets.sample_toy, static_argnames=("name", "n"))


def _check_toy_name(name: str) -> None:
  if name not in toy_datasets.TOY_2D:
    raise ValueError(f"unknown 2-D toy dataset {name!r} (config.data.toy_name); "
                     f"choose one of {sorted(toy_datasets.TOY_2D)}")


def _toy_sampler(name: str, n: int) -> Callable[[jax.Array], jax.Array]:
  _check_toy_name(name)
  return lambda key: _sample_toy(name=name, key=key, n=n)


def toy_eval_pool(name: str, seed: int, num: int = TOY_NUM_EVAL) -> np.ndarray:
  """The fixed 'test' set of a 2-D toy dataset: `num` points from fold_in(key(seed), tag)."""
  with _on_cpu():
    x = _toy_sampler(name, num)(jax.random.fold_in(jax.random.key(seed), _TOY_EVAL))
  return np.asarray(x, np.float32)


# ----------------------------------------------------------------------------- prefetching

def prefetch_map(fn: Callable[[int], T], steps: Iterable[int], *, num_threads: int,
                 buffer_size: int) -> Iterator[T]:
  """Yields `fn(step)` for `steps` in order, computing up to `buffer_size` of them ahead in threads.

  The work continues while the consumer runs its step; closing the iterator
  cancels what has not started.
  """
  steps = iter(steps)
  executor = concurrent.futures.ThreadPoolExecutor(num_threads, thread_name_prefix="scorejax-data")
  pending: collections.deque = collections.deque()
  try:
    for step in itertools.islice(steps, buffer_size):
      pending.append(executor.submit(fn, step))
    while pending:
      result = pending.popleft().result()
      for step in itertools.islice(steps, 1):
        pending.append(executor.submit(fn, step))
      yield result
  finally:
    if not sys.is_finalizing():  # an unclosed iterator is finalized at interpreter exit
      executor.shutdown(wait=False, cancel_futures=True)


def _default_threads(num_threads: int | None) -> int:
  return num_threads or max(1, min(8, os.cpu_count() or 1))


def batch_stream(batch_fn: Callable[[int], T], *, start_step: int = 0,
                 num_threads: int | None = None, prefetch: int | None = None) -> Iterator[T]:
  """Endless `batch_fn(start_step), batch_fn(start_step + 1), ...`, computed ahead in threads.

  num_threads: loader threads (default min(8, cpu count)); prefetch: batches computed
  ahead (default 2 * num_threads).
  """
  threads = _default_threads(num_threads)
  return prefetch_map(batch_fn, itertools.count(start_step), num_threads=threads,
                      buffer_size=prefetch or 2 * threads)


# ----------------------------------------------------------------------------- config edge

def _processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  index = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  if not 0 <= index < count:
    raise ValueError(f"process_index={index} is not in [0, process_count={count})")
  return index, count


def _check_dataset(name: str) -> None:
  valid = sorted(set(sources.IMAGE_DATASETS) | set(OFFLINE_DATASETS))
  if name not in valid:
    raise ValueError(f"unknown config.data.dataset {name!r}; choose one of {valid}")


def open_image_source(config: Any, split: str) -> sources.ImageSource:
  """The uint8 image source of `config.data.dataset`'s `split` ('train' or 'test') at `config.data.image_size`."""
  name = config.data.dataset
  _check_dataset(name)
  if name == "TOY2D":
    raise ValueError("TOY2D is not an image dataset")
  size = int(config.data.image_size)
  if name == "DIGITS":
    source, channels = sources.open_digits_source(split, size), 1
  else:
    source = sources.open_tfds_source(name, split, size, data_dir=config.data.get("data_dir"),
                                      category=config.data.get("category"))
    channels = sources.IMAGE_DATASETS[name].channels
  expected = config.data.get("num_channels", channels)
  if expected != channels:
    raise ValueError(f"{name} images have {channels} channel(s) but config.data.num_channels="
                     f"{expected}; set --config.data.num_channels={channels}")
  return source


def open_labels(config: Any, split: str) -> Callable[[int], int]:
  """`label(index)`: the class label of example `index` of `open_image_source(config, split)`.

  DIGITS: scikit-learn's targets (0-9); TFDS datasets: the records' 'label' feature
  (CIFAR-10, SVHN, MNIST). Class labels are delivered with the images when a config
  asks for them (`config.model.num_classes > 0`, `--mode=train_classifier`).
  """
  name = config.data.dataset
  _check_dataset(name)
  if name == "TOY2D":
    raise ValueError("TOY2D has no class labels; label-conditional models and classifiers need "
                     "a labelled image dataset (DIGITS, CIFAR10, SVHN, MNIST)")
  if name == "DIGITS":
    table = sources.digits_labels(split)
    return lambda i: int(table[i])
  return open_image_source(config, split).label


def get_data_shape(config: Any) -> tuple[int, ...]:
  """The shape of one example as `config.data` states it, without opening the dataset.

  (2,) for TOY2D; (image_size, image_size, num_channels) for images (num_channels
  defaults to the dataset's). Opening a split checks the stated channels.
  """
  name = config.data.dataset
  _check_dataset(name)
  if name == "TOY2D":
    _check_toy_name(config.data.toy_name)
    return (2,)
  channels = 1 if name == "DIGITS" else sources.IMAGE_DATASETS[name].channels
  size = int(config.data.image_size)
  return (size, size, int(config.data.get("num_channels", channels)))


def get_dataset_info(config: Any) -> DatasetInfo:
  """(number of training examples, shape of one example) for `config.data` (opens the data)."""
  _check_dataset(config.data.dataset)
  if config.data.dataset == "TOY2D":
    _check_toy_name(config.data.toy_name)
    return DatasetInfo(None, (2,))
  source = open_image_source(config, "train")
  return DatasetInfo(len(source), tuple(source[0].shape))


def make_train_batch_fn(config: Any, *, process_index: int | None = None,
                        process_count: int | None = None,
                        with_labels: bool = False) -> Callable[[int], Any]:
  """`batch_fn(step)` -> this process's slice of training batch `step` (what `train_batches` yields).

  `with_labels`: batches are `{"image": ..., "label": (B/P,) int32}` (`open_labels`).
  """
  index, count = _processes(process_index, process_count)
  batch_size, seed = int(config.training.batch_size), int(config.seed)
  _check_dataset(config.data.dataset)
  if config.data.dataset == "TOY2D":
    return make_toy_batch_fn(config.data.toy_name, batch_size=batch_size, seed=seed,
                             process_index=index, process_count=count)
  return make_image_batch_fn(
      open_image_source(config, "train"), batch_size=batch_size, seed=seed, shuffle=True,
      random_flip=bool(config.data.random_flip),
      uniform_dequantization=bool(config.data.uniform_dequantization), augment_tag=_TRAIN_AUG,
      process_index=index, process_count=count,
      labels=open_labels(config, "train") if with_labels else None)


def train_batches(config: Any, *, start_step: int = 0, process_index: int | None = None,
                  process_count: int | None = None, num_threads: int | None = None,
                  prefetch: int | None = None) -> Iterator[np.ndarray]:
  """Endless training batches from step `start_step` on, prefetched in background threads.

  Yields this process's slice of each global batch (`config.training.batch_size`
  split evenly over processes): float32 (B/P, H, W, C) images in [0, 1] (scale
  with `get_data_scaler` inside the train step), or (B/P, 2) points for TOY2D.
  The batch of step s depends only on (config, s): resuming at `start_step=s`
  reproduces an uninterrupted run exactly.

  Args:
    config: score_sde-style config (see the module docstring for the fields read).
    start_step: the step of the first batch yielded.
    process_index, process_count: default to `jax.process_index()` / `jax.process_count()`.
    num_threads: loader threads (default min(8, cpu count)).
    prefetch: batches computed ahead (default 2 * num_threads).
  """
  batch_fn = make_train_batch_fn(config, process_index=process_index, process_count=process_count)
  return batch_stream(batch_fn, start_step=start_step, num_threads=num_threads, prefetch=prefetch)


def eval_batches(config: Any, split: str = "test", *, batch_size: int | None = None,
                 drop_remainder: bool = True, process_index: int | None = None,
                 process_count: int | None = None,
                 num_threads: int | None = None, with_labels: bool = False) -> Iterator[Any]:
  """One pass over `split` in dataset order (for bits/dim and the eval loss), without flips.

  Dequantization (if `config.data.uniform_dequantization`) uses fixed noise seeded
  by (seed, batch number, position), so repeated evaluations see identical data.

  Args:
    config: score_sde-style config.
    split: 'train' or 'test' ('test' is the split score_sde evaluates on:
      'validation' for CelebA and LSUN). For TOY2D, 'test' is a fixed pool of
      `TOY_NUM_EVAL` points (and 'train' is not available).
    batch_size: global batch size; default `config.eval.batch_size`.
    drop_remainder: drop the last incomplete global batch (score_sde does). If
      False, the last batch is smaller and, with several processes, may be
      split unevenly (then pad it before assembling a global array).
    process_index, process_count: as in `train_batches`.
    num_threads: loader threads.
    with_labels: yield `{"image": images, "label": (B/P,) int32}` (`open_labels`).
  Yields:
    float32 (B/P, H, W, C) in [0, 1], or (B/P, 2) for TOY2D.
  """
  index, count = _processes(process_index, process_count)
  batch_size = int(batch_size or config.eval.batch_size)
  _check_dataset(config.data.dataset)
  if config.data.dataset == "TOY2D":
    if split != "test":
      raise ValueError(f"TOY2D has only the split 'test' (a fixed pool), not {split!r}")
    source = toy_eval_pool(config.data.toy_name, int(config.seed))
    augment = lambda x, key: x  # noqa: E731
  else:
    source = open_image_source(config, split)
    dequantize = bool(config.data.uniform_dequantization)
    augment = lambda x, key: preprocess.augment_example(  # noqa: E731
        x, key, random_flip=False, uniform_dequantization=dequantize)
  n = len(source)
  num_batches = n // batch_size if drop_remainder else -(-n // batch_size)
  positions = process_positions(batch_size, index, count)
  seed = int(config.seed)
  labels = open_labels(config, split) if with_labels else None

  def batch_fn(k: int) -> Any:
    pos = k * batch_size + positions
    pos = pos[pos < n]
    examples = [augment(source[i], (seed, _EVAL_AUG, k, int(j)))
                for i, j in zip(pos, pos - k * batch_size)]
    images = np.stack(examples) if examples else np.zeros((0, *np.shape(source[0])), np.float32)
    if labels is None:
      return images
    return {"image": images, "label": np.asarray([labels(i) for i in pos], np.int32)}

  threads = _default_threads(num_threads)
  return prefetch_map(batch_fn, range(num_batches), num_threads=threads, buffer_size=2 * threads)


def eval_num_batches(config: Any, split: str = "test", *, batch_size: int | None = None,
                     drop_remainder: bool = True) -> int:
  """How many global batches `eval_batches` yields for these arguments (for progress bars)."""
  batch_size = int(batch_size or config.eval.batch_size)
  _check_dataset(config.data.dataset)
  if config.data.dataset == "TOY2D":
    if split != "test":
      raise ValueError(f"TOY2D has only the split 'test' (a fixed pool), not {split!r}")
    n = TOY_NUM_EVAL
  else:
    n = len(open_image_source(config, split))
  return n // batch_size if drop_remainder else -(-n // batch_size)


class EvalData(NamedTuple):
  """A config's data as evaluation reads it, for code below the config edge (`eval_data`).

  `batches(split, batch_size, drop_remainder=True)`: one ordered pass over `split`, as
  `eval_batches`;
  `images(split)`: its uint8 image source, as `open_image_source`; `dataset` and
  `image_size`: `config.data`'s; `num_batches(split, batch_size)`: how many batches
  `batches` yields (as `eval_num_batches`; None where unknown).
  """
  dataset: str
  image_size: int
  batches: Callable[[str, int], Iterator[np.ndarray]]
  images: Callable[[str], sources.ImageSource]
  num_batches: Callable[[str, int], int] | None = None


def eval_data(config: Any) -> EvalData:
  """`config`'s evaluation data (`EvalData`); nothing is opened until it is used."""
  def batches(split: str, batch_size: int, drop_remainder: bool = True) -> Iterator[np.ndarray]:
    return eval_batches(config, split, batch_size=batch_size, drop_remainder=drop_remainder)

  def num_batches(split: str, batch_size: int, drop_remainder: bool = True) -> int:
    return eval_num_batches(config, split, batch_size=batch_size, drop_remainder=drop_remainder)

  return EvalData(dataset=str(config.data.dataset), image_size=int(config.data.image_size),
                  batches=batches, images=functools.partial(open_image_source, config),
                  num_batches=num_batches)
