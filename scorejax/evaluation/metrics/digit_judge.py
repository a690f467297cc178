"""A judge of digit samples: a classifier plus a nearest-neighbour distance, fitted on DIGITS.

A sample counts as a recognizable digit when the classifier (scikit-learn's MLP,
one hidden layer of 128, ~99% accurate on the 297 test digits) is confident (max
probability >= CONFIDENCE) *and* the sample lies within the real digits' distance to
the training set (nearest-neighbour L2 distance <= the 99th percentile of the test
digits' distances). The second condition is needed: like most classifiers, the MLP is
confidently wrong on pure noise (~75% of uniform-noise images get p >= 0.9), and the
distance check rejects noise and blends of two digits. Real test digits pass both
~95% of the time (16x16).

Used by the digits quick-start test (tests/test_digits_quickstart.py) and the
noise-scale ablation (examples/noise_scales.py). Fitting takes 10-60 s on a CPU;
`judge_for(image_size)` fits once per process.
"""

from __future__ import annotations

import functools

import numpy as np

from scorejax.data import sources

CONFIDENCE = 0.9


@functools.lru_cache(maxsize=None)
def real_digits(image_size: int):
  """(x_train, y_train, x_test, y_test): the DIGITS splits as flat [0, 1] float arrays."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  labels = load_digits().target
  order = np.random.default_rng(sources.DIGITS_SPLIT_SEED).permutation(len(labels))
  y_train, y_test = labels[order[:sources.DIGITS_NUM_TRAIN]], labels[order[sources.DIGITS_NUM_TRAIN:]]
  x_train = sources.open_digits_source("train", image_size).reshape(len(y_train), -1) / 255.0
  x_test = sources.open_digits_source("test", image_size).reshape(len(y_test), -1) / 255.0
  # Labels follow the sources' permutation; the judge's >= 95% test accuracy checks it.
  assert len(x_train) == len(y_train) and len(x_test) == len(y_test)
  return x_train, y_train, x_test, y_test


class DigitJudge:
  """Classifier + nearest-neighbour distance, fitted on the real DIGITS training split."""

  def __init__(self, image_size: int):
    from sklearn.neural_network import MLPClassifier  # pylint: disable=g-import-not-at-top
    self.x_train, y_train, self.x_test, self.y_test = real_digits(image_size)
    self.clf = MLPClassifier((128,), alpha=1e-3, max_iter=1000, random_state=0)
    self.clf.fit(self.x_train, y_train)
    self.max_distance = float(np.percentile(self.nn_distance(self.x_test), 99))

  def nn_distance(self, x: np.ndarray) -> np.ndarray:
    sq = (x ** 2).sum(1)[:, None] - 2.0 * x @ self.x_train.T + (self.x_train ** 2).sum(1)[None]
    return np.sqrt(np.maximum(sq.min(1), 0.0))

  def judge(self, images: np.ndarray) -> dict:
    """Fractions of confident / near-the-data / both ('digit'), the class histogram of the
    digits (fractions of all samples), and the accuracy when `images` are the test split."""
    x = np.clip(np.asarray(images, np.float64).reshape(len(images), -1), 0.0, 1.0)
    p = self.clf.predict_proba(x)
    confident = p.max(1) >= CONFIDENCE
    near = self.nn_distance(x) <= self.max_distance
    return {"confident": float(confident.mean()), "near": float(near.mean()),
            "digit": float((confident & near).mean()),
            "histogram": np.bincount(p.argmax(1)[confident & near], minlength=10) / len(x),
            "accuracy": float((p.argmax(1) == self.y_test).mean()) if len(x) == len(self.y_test) else None}


@functools.lru_cache(maxsize=None)
def judge_for(image_size: int) -> DigitJudge:
  """The judge of `image_size` x `image_size` digits, fitted once per process."""
  return DigitJudge(image_size)
