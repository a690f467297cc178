"""Fréchet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale
Update Rule", Eq. 6), computed like pytorch-fid 0.3.0's `calculate_frechet_distance`.

    FID = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2))

with mu, S the mean and unbiased covariance of the Inception pool3 features
(`feature_statistics`). Host-side numpy/scipy in float64.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def feature_statistics(feats) -> tuple[np.ndarray, np.ndarray]:
  """(mu (D,), sigma (D, D)) of features (N, D), N >= 2: mean and unbiased covariance
  (numpy.cov, rowvar=False), as pytorch-fid's calculate_activation_statistics."""
  feats = np.asarray(feats, dtype=np.float64)
  if feats.ndim != 2 or feats.shape[0] < 2:
    raise ValueError(f"features must be (N >= 2, D), got shape {feats.shape}")
  return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _sqrtm(a: np.ndarray) -> np.ndarray:
  out = scipy.linalg.sqrtm(a)
  return out[0] if isinstance(out, tuple) else out  # older scipy with disp=False semantics


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
  """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

  sqrtm(sigma1 @ sigma2) is scipy's Schur-based square root. As in pytorch-fid: when it
  is not finite (near-singular product), eps is added to both diagonals and it is
  recomputed; a complex result (round-off puts eigenvalues slightly off the real
  axis) is replaced by its real part, unless its diagonal has an imaginary part
  above 1e-3, which raises ValueError.
  """
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
    raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, "
                     f"sigma {sigma1.shape} vs {sigma2.shape}")
  diff = mu1 - mu2
  covmean = _sqrtm(sigma1 @ sigma2)
  if not np.isfinite(covmean).all():
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
  if np.iscomplexobj(covmean):
    max_imag = np.max(np.abs(np.diagonal(covmean).imag))
    if max_imag > 1e-3:
      raise ValueError(f"sqrtm(sigma1 @ sigma2) has an imaginary component {max_imag}")
    covmean = covmean.real
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid_from_features(feats1, feats2) -> float:
  """FID between two feature sets (N1, D), (N2, D)."""
  return frechet_distance(*feature_statistics(feats1), *feature_statistics(feats2))
