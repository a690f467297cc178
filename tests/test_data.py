"""Tests for scorejax.data: TFDS sources under `tfds.testing.mock_data` (never the network),
preprocessing, stateless resume, multi-process slicing, offline digits and 2-D toys."""

from __future__ import annotations

import itertools

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from scorejax import data
from scorejax.toy import datasets
from scorejax.data import pipeline, sources


def make_config(dataset="CIFAR10", *, image_size=32, num_channels=3, batch_size=8,
                random_flip=False, uniform_dequantization=False, centered=False, **extra):
  config = ml_collections.ConfigDict()
  config.seed = 42
  config.training = ml_collections.ConfigDict({"batch_size": batch_size})
  config.eval = ml_collections.ConfigDict({"batch_size": batch_size})
  config.data = ml_collections.ConfigDict(dict(
      dataset=dataset, image_size=image_size, num_channels=num_channels, random_flip=random_flip,
      uniform_dequantization=uniform_dequantization, centered=centered, data_dir=None, **extra))
  return config


def take(iterator, n):
  out = list(itertools.islice(iterator, n))
  iterator.close()
  return out


@pytest.fixture
def mock_tfds():
  # 20 examples with batches of 8: epochs end inside batches (step 2 spans epochs 0 and 1).
  with tfds.testing.mock_data(num_examples=20):
    yield


def raw_train_images(config):
  """The uint8 training images in stream order of the first steps (reference for augmentation)."""
  source = data.open_image_source(config, "train")
  return source, lambda step: [
      source[i] for i in data.example_indices(
          step * config.training.batch_size + np.arange(config.training.batch_size), len(source),
          lambda e: data.epoch_permutation(config.seed, e, len(source)))]


# ----------------------------------------------------------------------------- TFDS (mocked)

def test_cifar10_shapes_dtype_range_and_values(mock_tfds):
  config = make_config()
  assert data.get_dataset_info(config) == (20, (32, 32, 3))
  assert data.get_data_shape(config) == (32, 32, 3)
  _, raw = raw_train_images(config)
  batches = take(data.train_batches(config, process_index=0, process_count=1), 3)
  for step, x in enumerate(batches):
    assert x.shape == (8, 32, 32, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(x, np.stack(raw(step)) / np.float32(255))  # no flip, no noise


def test_epochs_are_permutations(mock_tfds):
  idx = data.example_indices(np.arange(60), 20, lambda e: data.epoch_permutation(42, e, 20))
  for epoch in range(3):
    assert sorted(idx[20 * epoch: 20 * (epoch + 1)]) == list(range(20))
  assert not np.array_equal(idx[:20], idx[20:40])  # reshuffled each epoch


def test_flips_only_in_train(mock_tfds):
  config = make_config(random_flip=True, batch_size=16)
  source, raw = raw_train_images(config)
  x = take(data.train_batches(config, process_index=0, process_count=1), 1)[0]
  flipped = []
  for xi, ri in zip(x, raw(0)):
    ri = ri / np.float32(255)
    assert np.array_equal(xi, ri) or np.array_equal(xi, ri[:, ::-1])
    flipped.append(not np.array_equal(xi, ri))
  assert 0 < sum(flipped) < 16  # P(all equal) = 2^-15
  evals = list(data.eval_batches(config, "test", batch_size=4, process_index=0, process_count=1))
  test_source = data.open_image_source(config, "test")
  assert len(evals) == 5
  np.testing.assert_array_equal(np.concatenate(evals),
                                np.stack([test_source[i] for i in range(20)]) / np.float32(255))


def test_uniform_dequantization_statistics(mock_tfds):
  config = make_config(uniform_dequantization=True)
  _, raw = raw_train_images(config)
  xs = take(data.train_batches(config, process_index=0, process_count=1), 2)
  u = np.concatenate([x * 256.0 - np.stack(raw(s)).astype(np.float32) for s, x in enumerate(xs)])
  assert u.min() >= -1e-4 and u.max() <= 1 + 1e-4  # x = (k + u) / 256, u ~ U[0, 1)
  # 49152 uniforms: sd of the mean 0.0013, of the variance 0.0004.
  assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
  assert np.corrcoef(u[0].ravel(), u[1].ravel())[0, 1] < 0.05
  ev = next(data.eval_batches(config, process_index=0, process_count=1))
  ev2 = next(data.eval_batches(config, process_index=0, process_count=1))
  np.testing.assert_array_equal(ev, ev2)  # fixed eval noise


def test_stateless_resume(mock_tfds):
  config = make_config(random_flip=True, uniform_dequantization=True)
  full = take(data.train_batches(config, process_index=0, process_count=1, num_threads=2), 6)
  resumed = take(data.train_batches(config, start_step=3, process_index=0, process_count=1), 3)
  for a, b in zip(full[3:], resumed):
    np.testing.assert_array_equal(a, b)
  batch_fn = data.make_train_batch_fn(config, process_index=0, process_count=1)
  np.testing.assert_array_equal(batch_fn(4), full[4])
  assert not np.array_equal(full[0], full[1])


def test_process_slices_concatenate_to_global_batch(mock_tfds):
  config = make_config(random_flip=True, uniform_dequantization=True)
  single = data.make_train_batch_fn(config, process_index=0, process_count=1)
  parts = [data.make_train_batch_fn(config, process_index=p, process_count=2) for p in range(2)]
  for step in range(4):
    local = [fn(step) for fn in parts]
    assert local[0].shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(np.concatenate(local), single(step))
  ev = [np.concatenate(list(data.eval_batches(config, process_index=p, process_count=2)))
        for p in range(2)]
  ev_single = list(data.eval_batches(config, process_index=0, process_count=1))
  np.testing.assert_array_equal(np.concatenate([ev[0][:4], ev[1][:4]]), ev_single[0])
  with pytest.raises(ValueError, match="divisible"):
    data.make_train_batch_fn(config, process_index=0, process_count=3)


def test_mnist_is_padded_to_32(mock_tfds):
  config = make_config("MNIST", num_channels=1)
  assert data.get_dataset_info(config) == (20, (32, 32, 1))
  x = next(data.eval_batches(config, process_index=0, process_count=1))
  assert x.shape == (8, 32, 32, 1)
  border = np.ones((32, 32), bool)
  border[2:30, 2:30] = False
  assert np.all(x[:, border] == 0) and x[:, 2:30, 2:30].max() > 0
  with pytest.raises(ValueError, match="num_channels=1"):
    data.get_dataset_info(make_config("MNIST", num_channels=3))


def test_celeba_and_lsun_crop_resize(mock_tfds):
  config = make_config("CELEBA", image_size=16, batch_size=4)
  assert data.get_dataset_info(config) == (20, (16, 16, 3))
  assert data.get_data_shape(config) == (16, 16, 3)
  raw = tfds.data_source("celeb_a", split="validation")[0]["image"]  # (218, 178, 3) in the mock
  expected = data.resize(data.central_crop(raw, 140), 16, 16, "bilinear") / np.float32(255)
  np.testing.assert_array_equal(next(data.eval_batches(config, process_index=0, process_count=1))[0],
                                expected)
  lsun = make_config("LSUN", image_size=16, batch_size=4, category="church_outdoor")
  x = take(data.train_batches(lsun, process_index=0, process_count=1), 1)[0]
  assert x.shape == (4, 16, 16, 3)  # the mock's images have random sizes
  with pytest.raises(ValueError, match="category"):
    data.get_dataset_info(make_config("LSUN"))


def test_missing_dataset_error_names_the_prepare_command(tmp_path):
  config = make_config()
  config.data.data_dir = str(tmp_path)
  with pytest.raises(data.DatasetNotPreparedError) as info:
    data.get_dataset_info(config)
  msg = str(info.value)
  for needle in ["'cifar10'", "pip install 'scorejax[prepare]'",
                 f"tfds build cifar10 --data_dir={tmp_path} --file_format=array_record",
                 "download_and_prepare()", f"--config.data.data_dir={tmp_path}", "TFDS_DATA_DIR"]:
    assert needle in msg, (needle, msg)


def test_unknown_dataset_lists_valid_names():
  with pytest.raises(ValueError, match="CIFAR10.*DIGITS.*TOY2D"):
    data.get_dataset_info(make_config("IMAGENET"))
  with pytest.raises(ValueError, match="CIFAR10.*DIGITS.*TOY2D"):
    data.get_data_shape(make_config("IMAGENET"))


def test_data_shape_comes_from_the_config_without_opening_the_data(tmp_path):
  """What `training.build_components` uses: the shape the config states (nothing prepared here)."""
  config = make_config()
  config.data.data_dir = str(tmp_path)
  assert data.get_data_shape(config) == (32, 32, 3)
  with pytest.raises(data.DatasetNotPreparedError):
    data.get_dataset_info(config)
  assert data.get_data_shape(make_config("MNIST", num_channels=1)) == (32, 32, 1)
  no_channels = make_config("SVHN", image_size=16)
  del no_channels.data["num_channels"]
  assert data.get_data_shape(no_channels) == (16, 16, 3)  # the dataset's channels
  assert data.get_data_shape(make_config("TOY2D", toy_name="two_moons")) == (2,)
  with pytest.raises(ValueError, match="two_moons"):
    data.get_data_shape(make_config("TOY2D", toy_name="moons"))


# ----------------------------------------------------------------------------- offline sources

def test_digits():
  config = make_config("DIGITS", image_size=16, num_channels=1, batch_size=100)
  assert data.get_dataset_info(config) == (1500, (16, 16, 1))
  assert data.get_data_shape(config) == (16, 16, 1)
  test = list(data.eval_batches(config, drop_remainder=False, process_index=0, process_count=1))
  assert [len(x) for x in test] == [100, 100, 97]
  x = np.concatenate(test)
  np.testing.assert_array_equal(x * 255, np.round(x * 255))  # 256 levels
  assert x.min() == 0.0 and x.max() == 1.0
  # The upscaled digits average back to the 8x8 originals (values / 16).
  from sklearn.datasets import load_digits
  original = load_digits().images / 16.0
  order = np.random.default_rng(sources.DIGITS_SPLIT_SEED).permutation(1797)
  pooled = x[..., 0].reshape(297, 8, 2, 8, 2).mean(axis=(2, 4))
  assert np.abs(pooled - original[order[1500:]]).mean() < 0.05
  train = data.make_train_batch_fn(config, process_index=0, process_count=1)(0)
  assert train.shape == (100, 16, 16, 1)
  # Upscaled once per process and size (a run opens both splits), and shared read-only.
  images = sources.load_digits_images(16)
  assert sources.load_digits_images(16) is images and not images.flags.writeable
  split = sources.open_digits_source("test", 16)
  assert split.flags.writeable and not np.shares_memory(split, images)


def test_toy_2d():
  config = make_config("TOY2D", batch_size=64, toy_name="two_moons")
  assert data.get_dataset_info(config) == (None, (2,))
  full = take(data.train_batches(config, process_index=0, process_count=1), 4)
  assert full[0].shape == (64, 2) and full[0].dtype == np.float32
  resumed = take(data.train_batches(config, start_step=2, process_index=0, process_count=1), 2)
  np.testing.assert_array_equal(resumed[0], full[2])
  np.testing.assert_array_equal(resumed[1], full[3])
  halves = [data.make_train_batch_fn(config, process_index=p, process_count=2)(1) for p in range(2)]
  np.testing.assert_array_equal(np.concatenate(halves), full[1])
  ev = list(data.eval_batches(config, process_index=0, process_count=1))
  assert len(ev) == data.TOY_NUM_EVAL // 64
  with pytest.raises(ValueError, match="two_moons"):
    data.get_dataset_info(make_config("TOY2D", toy_name="moons"))
  assert set(datasets.TOY_2D) >= {"two_moons"}


# ----------------------------------------------------------------------------- helpers

@pytest.mark.parametrize("centered", [False, True])
def test_scaler_round_trip(centered):
  config = make_config(centered=centered)
  x = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
  y = data.get_data_scaler(config)(x)
  assert (y.min() < 0) == centered and y.max() <= 1
  np.testing.assert_allclose(data.get_data_inverse_scaler(config)(y), x, atol=1e-6)


def test_prefetch_map_keeps_order():
  out = list(pipeline.prefetch_map(lambda s: s * s, range(20), num_threads=4, buffer_size=6))
  assert out == [s * s for s in range(20)]
