"""FIR up/down-sampling for NHWC images (StyleGAN2's `upfirdn2d`, as used by NCSN++).

NCSN++ (Song et al. 2021, App. H) resamples with the anti-aliasing FIR filter
k = [1, 3, 3, 1] of StyleGAN2 (Karras et al. 2020) instead of nearest/average
pooling. Everything here reproduces score_sde_pytorch's `up_or_down_sampling.py`
and its pure-PyTorch `upfirdn2d_native` bit for bit in semantics:

  upfirdn2d(x, k, up, down, (p0, p1)):
    1. insert `up - 1` zeros after every sample (length H -> H * up),
    2. zero-pad p0 before and p1 after (both spatial axes),
    3. convolve (true convolution: flipped kernel) with k, VALID,
    4. keep every `down`-th sample.

All functions take `x` NHWC and (for the fused convolutions) `w` HWIO.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array
_DIMS = ("NHWC", "HWIO", "NHWC")


def setup_kernel(k: Sequence[float] | np.ndarray) -> np.ndarray:
  """The normalized 2-D FIR kernel: outer(k, k) / sum for a 1-D k; sums to 1."""
  k = np.asarray(k, dtype=np.float32)
  if k.ndim == 1:
    k = np.outer(k, k)
  k = k / np.sum(k)
  assert k.ndim == 2 and k.shape[0] == k.shape[1]
  return k


def upfirdn2d(x: Array, k: np.ndarray, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> Array:
  """Upsample by zero insertion, pad, FIR-filter, downsample (same on both axes).

  x: (B, H, W, C); k: (kh, kw). Output height is (H * up + p0 + p1 - kh) // down + 1.
  Implemented as one depthwise `conv_general_dilated`: lhs dilation inserts the
  zeros ((H - 1) * up + 1 samples, so `up - 1` more zeros are padded at the end
  to match the native H * up), and the window stride does the downsampling.
  """
  p0, p1 = pad
  if p0 < 0 or p1 < 0:
    raise ValueError(f"negative padding {pad} is not supported")
  channels = x.shape[-1]
  k = np.asarray(k, dtype=np.float32)[::-1, ::-1]  # convolution, not correlation
  w = jnp.asarray(np.tile(k[:, :, None, None], (1, 1, 1, channels)), dtype=x.dtype)
  padding = [(p0, p1 + up - 1)] * 2
  return lax.conv_general_dilated(x, w, window_strides=(down, down), padding=padding,
                                  lhs_dilation=(up, up), dimension_numbers=_DIMS,
                                  feature_group_count=channels)


def _upfirdn_axis(x: Array, k1: np.ndarray, axis: int, up: int, down: int,
                  pad: tuple[int, int]) -> Array:
  """`upfirdn2d` along one axis with a 1-D kernel, as shifted slices (no convolution op)."""
  p0, p1 = pad
  if up > 1:  # zero insertion: H -> H * up, zeros after every sample
    x = jnp.stack([x] + [jnp.zeros_like(x)] * (up - 1), axis=axis + 1)
    x = x.reshape(x.shape[:axis] + (x.shape[axis] * up,) + x.shape[axis + 2:])
  widths = [(0, 0)] * x.ndim
  widths[axis] = (p0, p1)
  x = jnp.pad(x, widths)
  taps = len(k1)
  n_out = (x.shape[axis] - taps) // down + 1
  flipped = np.asarray(k1, dtype=np.float32)[::-1]  # convolution, not correlation
  out = None
  for j in range(taps):
    if flipped[j] == 0:
      continue
    term = float(flipped[j]) * lax.slice_in_dim(x, j, j + down * (n_out - 1) + 1, stride=down,
                                                axis=axis)
    out = term if out is None else out + term
  return out


def _fir(x: Array, k: Sequence[float] | np.ndarray, gain: float, up: int = 1, down: int = 1,
         pad: tuple[int, int] = (0, 0)) -> Array:
  """upfirdn2d with the normalized kernel of `k` times `gain`.

  A 1-D `k` means the separable kernel outer(k, k) / sum: it is applied one axis
  at a time (8 multiply-adds per output for [1, 3, 3, 1] instead of a 16-tap
  depthwise convolution, which XLA's CPU backend runs slowly). A 2-D `k` goes
  through the generic `upfirdn2d`.
  """
  k = np.asarray(k, dtype=np.float32)
  if k.ndim == 2:
    return upfirdn2d(x, setup_kernel(k) * gain, up=up, down=down, pad=pad)
  if pad[0] < 0 or pad[1] < 0:
    raise ValueError(f"negative padding {pad} is not supported")
  k1 = k / np.sum(k)
  x = _upfirdn_axis(x, k1, 1, up, down, pad)
  x = _upfirdn_axis(x, k1, 2, up, down, pad)
  return x * gain if gain != 1 else x


def upsample_2d(x: Array, k: Sequence[float] | None = None, factor: int = 2,
                gain: float = 1.0) -> Array:
  """FIR upsampling (B, H, W, C) -> (B, H*factor, W*factor, C); k defaults to nearest."""
  if k is None:
    k = [1] * factor
  p = len(k) - factor
  return _fir(x, k, gain * factor ** 2, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2))


def downsample_2d(x: Array, k: Sequence[float] | None = None, factor: int = 2,
                  gain: float = 1.0) -> Array:
  """FIR downsampling (B, H, W, C) -> (B, H//factor, W//factor, C); k defaults to avg-pool."""
  if k is None:
    k = [1] * factor
  p = len(k) - factor
  return _fir(x, k, gain, down=factor, pad=((p + 1) // 2, p // 2))


def upsample_conv_2d(x: Array, w: Array, k: Sequence[float] | None = None, factor: int = 2,
                     gain: float = 1.0) -> Array:
  """Fused transposed convolution (stride `factor`) followed by FIR filtering.

  w: (kh, kw, C_in, C_out) HWIO, the same tensor a plain convolution would use.
  score_sde_pytorch flips w and runs `conv_transpose2d`; that equals a
  correlation with the unflipped w over the zero-inserted input padded by kh - 1,
  which is what `lhs_dilation` computes here.
  """
  conv_h, conv_w = w.shape[0], w.shape[1]
  assert conv_h == conv_w
  if k is None:
    k = [1] * factor
  p = (len(k) - factor) - (conv_w - 1)
  x = lax.conv_general_dilated(x, w, window_strides=(1, 1),
                               padding=[(conv_h - 1, conv_h - 1), (conv_w - 1, conv_w - 1)],
                               lhs_dilation=(factor, factor), dimension_numbers=_DIMS)
  return _fir(x, k, gain * factor ** 2, pad=((p + 1) // 2 + factor - 1, p // 2 + 1))


def conv_downsample_2d(x: Array, w: Array, k: Sequence[float] | None = None, factor: int = 2,
                       gain: float = 1.0) -> Array:
  """FIR filtering followed by a strided VALID convolution with w (HWIO)."""
  conv_h, conv_w = w.shape[0], w.shape[1]
  assert conv_h == conv_w
  if k is None:
    k = [1] * factor
  p = (len(k) - factor) + (conv_w - 1)
  x = _fir(x, k, gain, pad=((p + 1) // 2, p // 2))
  return lax.conv_general_dilated(x, w, window_strides=(factor, factor), padding="VALID",
                                  dimension_numbers=_DIMS)


def naive_upsample_2d(x: Array, factor: int = 2) -> Array:
  """Nearest-neighbour upsampling: every pixel repeated factor x factor times."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def naive_downsample_2d(x: Array, factor: int = 2) -> Array:
  """Average pooling over non-overlapping factor x factor windows."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // factor, factor, w // factor, factor, c)
  return jnp.mean(x, axis=(2, 4))
