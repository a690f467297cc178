"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs", Sec. 4 and
Eq. 3): the unbiased MMD^2 between Inception features under the cubic polynomial kernel

    k(x, y) = (x . y / d + 1)^3,

    MMD^2_u = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(m(m-1)) sum_{i != j} k(y_i, y_j)
              - 2/m^2 sum_{i, j} k(x_i, y_j),

averaged over random subsets of m points from each set, as in the authors' code and
torch-fidelity (defaults: 100 subsets of 1000). Host-side numpy in float64.
"""

from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Gram matrix (x . y / d + 1)^3 of rows of x (n, d) and y (m, d)."""
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD^2 (Eq. 3 of Bińkowski et al.) between equal-sized sets (m, d)."""
  m = x.shape[0]
  k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
  off_xx = k_xx.sum() - np.trace(k_xx)
  off_yy = k_yy.sum() - np.trace(k_yy)
  return float((off_xx + off_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / m**2)


def kid_subsets(feats1, feats2, *, num_subsets: int = 100, subset_size: int = 1000,
                seed: int = 0) -> np.ndarray:
  """MMD^2_u of each of `num_subsets` random subset pairs.

  subset_size is capped at min(N1, N2). Subsets are drawn without replacement, for
  each subset first from feats1 then from feats2, by
  `numpy.random.default_rng(seed).choice(N, subset_size, replace=False)`.
  """
  x_all = np.asarray(feats1, np.float64)
  y_all = np.asarray(feats2, np.float64)
  if x_all.ndim != 2 or y_all.ndim != 2 or x_all.shape[1] != y_all.shape[1]:
    raise ValueError(f"features must be (N1, D) and (N2, D), got {x_all.shape}, {y_all.shape}")
  m = min(subset_size, x_all.shape[0], y_all.shape[0])
  if m < 2:
    raise ValueError(f"need at least 2 features per set, got {x_all.shape[0]}, {y_all.shape[0]}")
  rng = np.random.default_rng(seed)
  values = np.empty(num_subsets)
  for s in range(num_subsets):
    x = x_all[rng.choice(x_all.shape[0], m, replace=False)]
    y = y_all[rng.choice(y_all.shape[0], m, replace=False)]
    values[s] = mmd2_unbiased(x, y)
  return values


def kernel_inception_distance(feats1, feats2, *, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> float:
  """KID: the mean over subsets of MMD^2_u (see `kid_subsets`; its std is the usual
  error bar). Features (N1, D), (N2, D), e.g. Inception pool3 (D = 2048)."""
  return float(np.mean(kid_subsets(feats1, feats2, num_subsets=num_subsets,
                                   subset_size=subset_size, seed=seed)))
