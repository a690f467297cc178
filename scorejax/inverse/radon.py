"""The parallel-beam Radon transform (sparse-view CT) and filtered back-projection.

`Radon(image_size, angles)` computes the sinogram the way scikit-image's
`skimage.transform.radon(image, theta=angles, circle=True)` does, so the two agree to
float32 rounding: for each angle theta (degrees) the image is rotated about the centre
c = N // 2 with bilinear interpolation (zero outside the image), the output pixel at
(row, col) reading the input at

    col' = c + cos(theta) (col - c) + sin(theta) (row - c)
    row' = c - sin(theta) (col - c) + cos(theta) (row - c),

and summed over rows: detector bin `col` of the projection at theta. The image must be
zero outside the inscribed circle (the "circle" convention), where every ray stays inside
the image. Sinograms are (B, N, n_angles): detector bins by angles, as scikit-image's.

The adjoint is the exact transpose of this linear map (`jax.linear_transpose`), so the
adjoint test holds to float rounding; the pseudo-inverse runs conjugate gradients on
(A A^T + reg I) u = y (A^+ y = A^T u). `Radon.fbp` is the classical reconstruction,
filtered back-projection (Kak & Slaney 1988, Ch. 3, the Ram-Lak filter of their Eq. 61 with
optional windows) with the pixel-driven, linearly interpolated back-projection and the
pi / (2 n_angles) normalization of scikit-image's `iradon`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from scorejax.inverse.operators import PytreeOperator, per_example

Array = jax.Array

FBP_FILTERS = ("ramp", "shepp-logan", "cosine", "hann")


def _bilinear_rotation_sums(image: Array, cos: Array, sin: Array) -> Array:
  """(N,) projection of one (N, N) image at one angle (see the module docstring)."""
  n = image.shape[0]
  c = n // 2
  rows, cols = jnp.meshgrid(jnp.arange(n, dtype=image.dtype) - c,
                            jnp.arange(n, dtype=image.dtype) - c, indexing="ij")
  src_c = c + cos * cols + sin * rows
  src_r = c - sin * cols + cos * rows
  r0, c0 = jnp.floor(src_r), jnp.floor(src_c)
  dr, dc = src_r - r0, src_c - c0
  r0, c0 = r0.astype(jnp.int32), c0.astype(jnp.int32)

  def pixel(r, col):
    inside = (r >= 0) & (r < n) & (col >= 0) & (col < n)
    return jnp.where(inside, image[jnp.clip(r, 0, n - 1), jnp.clip(col, 0, n - 1)], 0.0)

  top = (1 - dc) * pixel(r0, c0) + dc * pixel(r0, c0 + 1)
  bottom = (1 - dc) * pixel(r0 + 1, c0) + dc * pixel(r0 + 1, c0 + 1)
  return jnp.sum((1 - dr) * top + dr * bottom, axis=0)


def _ramp_filter(n_padded: int, window: str) -> np.ndarray:
  """(n_padded,) frequency response of the Ram-Lak filter (Kak & Slaney 1988, Eq. 61: h(0) =
  1/4, h(k) = -1/(pi k)^2 for odd k, 0 for even k, sampled in space to avoid the DC offset
  of a frequency-sampled ramp) times an optional window, as scikit-image's `iradon`."""
  n = np.concatenate([np.arange(1, n_padded // 2 + 1, 2), np.arange(n_padded // 2 - 1, 0, -2)])
  h = np.zeros(n_padded)
  h[0] = 0.25
  h[1::2] = -1.0 / (np.pi * n) ** 2
  response = 2.0 * np.real(np.fft.fft(h))
  omega = 2.0 * np.pi * np.fft.fftfreq(n_padded)
  if window == "shepp-logan":
    response[1:] *= np.sin(omega[1:] / 2) / (omega[1:] / 2)
  elif window == "cosine":
    response *= np.fft.fftshift(np.sin(np.linspace(0, np.pi, n_padded, endpoint=False)))
  elif window == "hann":
    response *= np.fft.fftshift(np.hanning(n_padded))
  elif window != "ramp":
    raise ValueError(f"filter={window!r} is not one of {FBP_FILTERS}")
  return response


class Radon(PytreeOperator):
  """Parallel-beam sinograms (B, N, n_angles) of (B, N, N, 1) images at `angles` (degrees).

  `pinv_steps` conjugate-gradient steps solve (A A^T + reg I) u = y for the pseudo-inverse.
  """

  _static = ('image_size', 'angles', 'pinv_steps')

  def __init__(self, image_size: int, angles, *, pinv_steps: int = 30):
    self.image_size = int(image_size)
    self.angles = tuple(float(a) for a in np.asarray(angles, np.float64).reshape(-1))
    if not self.angles:
      raise ValueError("Radon needs at least one angle")
    self.pinv_steps = int(pinv_steps)

  @property
  def n_angles(self) -> int:
    return len(self.angles)

  def _check(self, x: Array) -> None:
    n = self.image_size
    if x.ndim != 4 or x.shape[1:] != (n, n, 1):
      raise ValueError(f"Radon({n}) takes images (B, {n}, {n}, 1); got shape {x.shape}")

  def _trig(self, dtype):
    rad = np.deg2rad(np.asarray(self.angles))
    return jnp.asarray(np.cos(rad), dtype), jnp.asarray(np.sin(rad), dtype)

  def forward(self, x: Array) -> Array:
    self._check(x)
    cos, sin = self._trig(x.dtype)
    per_image = jax.vmap(_bilinear_rotation_sums, in_axes=(None, 0, 0), out_axes=1)
    return jax.vmap(lambda im: per_image(im, cos, sin))(x[..., 0])

  def adjoint(self, y: Array) -> Array:
    n = self.image_size
    x_like = jax.ShapeDtypeStruct((y.shape[0], n, n, 1), y.dtype)
    (x,) = jax.linear_transpose(self.forward, x_like)(y)
    return x

  def pinv(self, y: Array, reg=0.0) -> Array:
    reg = per_example(reg, y)
    gram = lambda u: self.forward(self.adjoint(u)) + reg * u
    u, _ = jax.scipy.sparse.linalg.cg(gram, y, maxiter=self.pinv_steps, tol=1e-6)
    return self.adjoint(u)

  def noise(self, key: Array, y: Array) -> Array:
    return jax.random.normal(key, y.shape, y.dtype)

  def fbp(self, y: Array, *, filter: str = "ramp", circle: bool = True) -> Array:
    """Filtered back-projection of sinograms y (B, N, n_angles) -> images (B, N, N, 1).

    The projections are zero-padded to max(64, the power of two >= 2N) bins, filtered
    (`filter` in FBP_FILTERS), back-projected pixel by pixel with linear interpolation
    between bins, and scaled by pi / (2 n_angles); with `circle`, zero outside the
    inscribed circle.
    """
    n = self.image_size
    if y.ndim != 3 or y.shape[1:] != (n, self.n_angles):
      raise ValueError(f"fbp takes sinograms (B, {n}, {self.n_angles}); got {y.shape}")
    padded = max(64, int(2 ** math.ceil(math.log2(2 * n))))
    response = jnp.asarray(_ramp_filter(padded, filter), y.dtype)
    spectrum = jnp.fft.fft(jnp.pad(y, ((0, 0), (0, padded - n), (0, 0))), axis=1)
    filtered = jnp.real(jnp.fft.ifft(spectrum * response[None, :, None], axis=1))[:, :n]
    c = n // 2
    rows, cols = jnp.meshgrid(jnp.arange(n) - c, jnp.arange(n) - c, indexing="ij")
    cos, sin = self._trig(y.dtype)
    # Detector coordinate of each pixel at each angle (the forward map's inverse rotation).
    t = cols[None] * cos[:, None, None] - rows[None] * sin[:, None, None] + c  # (A, N, N)
    t0 = jnp.floor(t)
    w = t - t0
    t0 = t0.astype(jnp.int32)

    def bin_value(q, idx):  # q: (N, A) one sinogram; zero outside the detector
      inside = (idx >= 0) & (idx < n)
      vals = jnp.take_along_axis(q.T[:, None, :], jnp.clip(idx, 0, n - 1).reshape(
          self.n_angles, 1, -1), axis=2).reshape(idx.shape)
      return jnp.where(inside, vals, 0.0)

    def back_project(q):
      return jnp.sum((1 - w) * bin_value(q, t0) + w * bin_value(q, t0 + 1), axis=0)

    image = jax.vmap(back_project)(filtered) * (math.pi / (2 * self.n_angles))
    if circle:
      image = jnp.where((rows**2 + cols**2 > (n // 2) ** 2)[None], 0.0, image)
    return image[..., None]


def circle_mask(size: int) -> np.ndarray:
  """(size, size) 1 inside the inscribed circle of the Radon transform's convention."""
  c = size // 2
  r, q = np.mgrid[:size, :size] - c
  return (r**2 + q**2 <= (size // 2) ** 2).astype(np.float32)
