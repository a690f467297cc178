"""Random-access image sources: TFDS datasets (ArrayRecord) and offline scikit-learn digits.

A source is anything with `len(source)` and `source[i]` -> uint8 (H, W, C) image
already cropped/resized to the configured `image_size` (score_sde's resize_op).
The random part of preprocessing (flip, dequantization) happens in `pipeline`.

TFDS datasets are read with `tfds.data_source` (random access to ArrayRecord
files; no TensorFlow needed). They must have been prepared once, with
TensorFlow, in the ArrayRecord format; `open_image_source` says how when they
are missing. `IMAGE_DATASETS` maps score_sde's `config.data.dataset` names to
their description.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from scorejax.data import preprocess


class ImageSource(Protocol):
  """Random access to uint8 (H, W, C) images of the final size."""

  def __len__(self) -> int: ...

  def __getitem__(self, index: int) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class TFDSDataset:
  """How one score_sde dataset name maps onto TFDS.

  Attributes:
    tfds_name: TFDS name; '{category}' is filled from `config.data.category` (LSUN).
    splits: logical split ('train' / 'test') -> TFDS split. 'test' is the split
      score_sde evaluates on (CelebA and LSUN: 'validation').
    channels: image channels.
    transform: (uint8 image, image_size) -> uint8 (image_size, image_size, channels).
    note: extra advice printed when the dataset is missing.
  """
  tfds_name: str
  splits: Mapping[str, str]
  channels: int
  transform: Callable[[np.ndarray, int], np.ndarray]
  note: str = ""


def _resize_square(image: np.ndarray, size: int) -> np.ndarray:
  # score_sde (CIFAR10, SVHN): tf.image.resize(img, [size, size], antialias=True), bilinear.
  return preprocess.resize(image, size, size, "bilinear")


def _celeba(image: np.ndarray, size: int) -> np.ndarray:
  # score_sde (CELEBA): central_crop(img, 140), then resize_small(img, size).
  return preprocess.resize_small(preprocess.central_crop(image, 140), size)


def _lsun(image: np.ndarray, size: int) -> np.ndarray:
  # score_sde (LSUN): at 128 px resize_small then central_crop; otherwise crop_resize.
  if size == 128:
    return preprocess.central_crop(preprocess.resize_small(image, size), size)
  return preprocess.crop_resize(image, size)


_TRAIN_TEST = {"train": "train", "test": "test"}
_TRAIN_VALIDATION = {"train": "train", "test": "validation"}

IMAGE_DATASETS: Mapping[str, TFDSDataset] = {
    "CIFAR10": TFDSDataset("cifar10", _TRAIN_TEST, 3, _resize_square),
    "SVHN": TFDSDataset("svhn_cropped", _TRAIN_TEST, 3, _resize_square),
    "MNIST": TFDSDataset("mnist", _TRAIN_TEST, 1, preprocess.pad_or_resize),
    "CELEBA": TFDSDataset(
        "celeb_a", _TRAIN_VALIDATION, 3, _celeba,
        note="CelebA is downloaded from Google Drive, which sometimes refuses with a quota "
             "error; retry later or place the files in <data_dir>/downloads/manual."),
    "LSUN": TFDSDataset(
        "lsun/{category}", _TRAIN_VALIDATION, 3, _lsun,
        note="LSUN archives are large (bedroom: ~43 GiB, church_outdoor: ~2.3 GiB); set "
             "config.data.category to the scene, e.g. 'bedroom' or 'church_outdoor'."),
}

# Offline image dataset: scikit-learn's bundled 8x8 digits.
DIGITS_NUM_TRAIN = 1500  # of 1797; the remaining 297 are the 'test' split
DIGITS_SPLIT_SEED = 0


def default_tfds_data_dir() -> str:
  """Where TFDS looks when no data_dir is given: $TFDS_DATA_DIR or ~/tensorflow_datasets."""
  return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


class DatasetNotPreparedError(FileNotFoundError):
  """A TFDS dataset is not available (as ArrayRecord files) in the data directory."""


def prepare_instructions(tfds_name: str, data_dir: str | None, note: str = "") -> str:
  """The commands that prepare `tfds_name` in `data_dir` for `tfds.data_source`."""
  target = data_dir or default_tfds_data_dir()
  lines = [
      "Prepare it once (this needs TensorFlow, which scorejax itself does not):",
      "  pip install 'scorejax[prepare]'",
      f"  tfds build {tfds_name} --data_dir={target} --file_format=array_record",
      "or, equivalently:",
      f"  python -c \"import tensorflow_datasets as tfds; tfds.builder('{tfds_name}', "
      f"data_dir='{target}', file_format='array_record').download_and_prepare()\"",
      f"then run with --config.data.data_dir={target} (or set TFDS_DATA_DIR={target}).",
  ]
  if note:
    lines.append(note)
  return "\n".join(lines)


class TFDSImageSource:
  """A `tfds.data_source` split whose examples are mapped to uint8 images of `image_size`."""

  def __init__(self, records: Sequence[dict], transform: Callable[[np.ndarray, int], np.ndarray],
               image_size: int):
    self._records = records
    self._transform = transform
    self._image_size = image_size

  def __len__(self) -> int:
    return len(self._records)

  def label(self, index: int) -> int:
    """The class label of example `index` (TFDS's 'label' feature)."""
    record = self._records[int(index)]
    if "label" not in record:
      raise ValueError("this TFDS dataset has no 'label' feature: class labels (config.model."
                       "num_classes > 0, --mode=train_classifier) need a labelled dataset")
    return int(record["label"])

  def __getitem__(self, index: int) -> np.ndarray:
    image = np.asarray(self._records[int(index)]["image"])
    if image.ndim == 2:
      image = image[..., None]
    return self._transform(image, self._image_size)


def open_tfds_source(dataset: str, split: str, image_size: int, *, data_dir: str | None = None,
                     category: str | None = None) -> TFDSImageSource:
  """Opens one split of a TFDS image dataset for random access.

  Args:
    dataset: a key of `IMAGE_DATASETS` (score_sde's `config.data.dataset`).
    split: 'train' or 'test' (the split score_sde evaluates on).
    image_size: side of the square images returned.
    data_dir: TFDS data directory; None means $TFDS_DATA_DIR or ~/tensorflow_datasets.
    category: LSUN scene category (score_sde's `config.data.category`).
  Raises:
    DatasetNotPreparedError: the dataset is not in `data_dir`; the message gives the
      command that prepares it. Nothing is ever downloaded from here.
  """
  if dataset not in IMAGE_DATASETS:
    raise ValueError(f"unknown TFDS image dataset {dataset!r}; choose one of {sorted(IMAGE_DATASETS)}")
  spec = IMAGE_DATASETS[dataset]
  if split not in spec.splits:
    raise ValueError(f"unknown split {split!r} for {dataset}; choose one of {sorted(spec.splits)}")
  if "{category}" in spec.tfds_name and not category:
    raise ValueError(f"{dataset} needs config.data.category (e.g. 'bedroom' or 'church_outdoor')")
  tfds_name = spec.tfds_name.format(category=category)

  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import; TFDS users only)

  try:
    records = tfds.data_source(tfds_name, split=spec.splits[split], data_dir=data_dir,
                               download=False, builder_kwargs={"file_format": "array_record"})
  except Exception as e:  # TFDS raises several types here (not found, wrong format, ...)
    where = data_dir or default_tfds_data_dir()
    raise DatasetNotPreparedError(
        f"TFDS dataset '{tfds_name}' (config.data.dataset={dataset!r}, split "
        f"'{spec.splits[split]}') could not be opened from data_dir '{where}' as ArrayRecord files.\n"
        f"TFDS said: {type(e).__name__}: {e}\n"
        + prepare_instructions(tfds_name, data_dir, spec.note)) from e
  return TFDSImageSource(records, spec.transform, image_size)


@functools.lru_cache(maxsize=4)
def load_digits_images(image_size: int, method: str = "bicubic") -> np.ndarray:
  """scikit-learn's 1797 bundled 8x8 digits as uint8 (1797, image_size, image_size, 1).

  Values 0..16 are mapped to [0, 1], upscaled with PIL's bicubic filter on the
  float image (smooth strokes instead of 8x8 blocks), clipped to [0, 1] (bicubic
  overshoots a little) and rounded to 256 levels, so the data are 8-bit images
  like every other dataset here and bits/dim is comparable. Computed once per
  process for each size (a run opens the train and test splits, ~0.4 s each) and
  returned read-only.
  """
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  digits = load_digits().images.astype(np.float32) / 16.0  # (1797, 8, 8)
  up = np.stack([preprocess.resize(d[..., None], image_size, image_size, method) for d in digits])
  images = np.round(np.clip(up, 0.0, 1.0) * 255.0).astype(np.uint8)
  images.flags.writeable = False
  return images


def _digits_order_and_split(split: str) -> tuple[np.ndarray, slice]:
  splits = {"train": slice(0, DIGITS_NUM_TRAIN), "test": slice(DIGITS_NUM_TRAIN, None)}
  if split not in splits:
    raise ValueError(f"unknown split {split!r} for DIGITS; choose one of {sorted(splits)}")
  return np.random.default_rng(DIGITS_SPLIT_SEED).permutation(1797), splits[split]


def digits_labels(split: str) -> np.ndarray:
  """The class labels (0-9, int32) of `open_digits_source(split, ...)`'s images, in order."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  order, part = _digits_order_and_split(split)
  return load_digits().target.astype(np.int32)[order[part]]


def open_digits_source(split: str, image_size: int) -> np.ndarray:
  """The DIGITS 'train' (1500) or 'test' (297) split: a fixed permutation of the 1797 digits.

  The uint8 array (N, image_size, image_size, 1) is itself a source (len and indexing).
  """
  order, part = _digits_order_and_split(split)
  images = load_digits_images(image_size)
  assert len(images) == len(order)
  return images[order[part]]
