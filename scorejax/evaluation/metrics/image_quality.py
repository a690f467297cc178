"""Reconstruction metrics: PSNR and SSIM of images against the truth.

psnr   10 log10(data_range^2 / MSE) per image.
ssim   the structural similarity index (Wang, Bovik, Sheikh & Simoncelli 2004, Eq. 13) in
       scikit-image's default form (`skimage.metrics.structural_similarity` with
       win_size=7, gaussian_weights=False, use_sample_covariance=True, K1=0.01, K2=0.03):
       local means, variances and covariance over 7 x 7 windows (the sample covariance,
       normalized by 48), the SSIM map averaged over the windows lying wholly inside the
       image (scikit-image crops the 3 border pixels its padded filter would reach) and
       over channels.

Both take images (B, H, W, C) (or (B, H, W)) and return one value per image (B,); jittable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _as_bhwc(x: Array) -> Array:
  x = jnp.asarray(x, jnp.float32)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4:
    raise ValueError(f"expected images (B, H, W, C) or (B, H, W); got shape {x.shape}")
  return x


def psnr(x: Array, truth: Array, data_range: float = 1.0) -> Array:
  """(B,) peak signal-to-noise ratio in dB of x against truth (equal shapes)."""
  x, truth = _as_bhwc(x), _as_bhwc(truth)
  if x.shape != truth.shape:
    raise ValueError(f"psnr: shapes differ, {x.shape} vs {truth.shape}")
  mse = jnp.mean(jnp.square(x - truth), axis=(1, 2, 3))
  return 10.0 * jnp.log10(data_range**2 / jnp.maximum(mse, 1e-20))


def _window_mean(x: Array, size: int) -> Array:
  """Means over every size x size window inside the image: (B, H-size+1, W-size+1, C)."""
  s = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, size, size, 1), (1, 1, 1, 1), "VALID")
  return s / size**2


def ssim(x: Array, truth: Array, data_range: float = 1.0, *, win_size: int = 7,
         k1: float = 0.01, k2: float = 0.03) -> Array:
  """(B,) mean structural similarity of x against truth (see the module docstring)."""
  x, truth = _as_bhwc(x), _as_bhwc(truth)
  if x.shape != truth.shape:
    raise ValueError(f"ssim: shapes differ, {x.shape} vs {truth.shape}")
  if min(x.shape[1:3]) < win_size:
    raise ValueError(f"ssim: images {x.shape[1:3]} are smaller than the window {win_size}")
  mean = lambda a: _window_mean(a, win_size)
  ux, uy = mean(x), mean(truth)
  cov_norm = win_size**2 / (win_size**2 - 1.0)  # the sample covariance
  vx = cov_norm * (mean(x * x) - ux * ux)
  vy = cov_norm * (mean(truth * truth) - uy * uy)
  vxy = cov_norm * (mean(x * truth) - ux * uy)
  c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
  s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
  return jnp.mean(s, axis=(1, 2, 3))
