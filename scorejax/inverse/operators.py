"""Linear measurement operators y = A x for inverse problems, with adjoints and pseudo-inverses.

Every operator here maps a batch x (B, *data_shape) to measurements y (B, *measurement_shape)
and offers the same four methods, written once per operator and used by every solver:

    A.forward(x)          y = A x
    A.adjoint(y)          x_like = A^T y, the adjoint for the real inner product
                          <A x, y> = <x, A^T y> (complex measurements count as pairs of reals)
    A.pinv(y, reg=0.0)    A^T (A A^T + reg I)^{-1} y (reg a scalar or one per example, (B,)) = (A^T A + reg I)^{-1} A^T y: the Tikhonov-
                          regularized pseudo-inverse (reg = 0: the minimum-norm least-squares
                          solution A^+ y), exact where A A^T is diagonal in a known basis
                          (masks, Fourier, pooling, blur, a dense matrix by its SVD) and a fixed
                          number of conjugate-gradient steps otherwise (Radon)
    A.noise(key, y)       standard normal noise in every real coordinate of the measurements
                          (both parts of a complex one), zero where nothing is measured

The solvers need no more: the measurement-consistent merge of Song, Shen, Xing & Ermon 2022
is x + lam A^+ (y_t - A x), and the Gaussian likelihood of a Tweedie estimate pulls back
A^T (r^2 A A^T + sigma_y^2 I)^{-1} (y - A x0_hat) = A.pinv(., sigma_y^2 / r^2) / r^2.

Operators are pytrees (`PytreeOperator`: arrays as leaves, static settings as auxiliary
data), so they pass through `jax.jit` as arguments or as constants.

PixelMask          x * mask: inpainting's selection (A A^T = mask, a projection).
SubsampledFourier  the orthonormal 2-D FFT of (B, H, W, 1) real images kept where a k-space
                   mask is 1 (MRI; Cartesian line masks from `cartesian_line_mask`).
Radon              the parallel-beam sinogram at a set of angles (`scorejax.inverse.radon`).
MatrixOperator     any dense (M, D) matrix on flattened data (the SVD gives A^+ exactly).
Downsample         f x f average pooling (super-resolution).
GaussianBlur       circular Gaussian blur (deblurring), diagonal in the Fourier basis.
"""

from __future__ import annotations

import math
from typing import Protocol

import chex
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class LinearOperator(Protocol):
  """The interface every solver uses (see the module docstring)."""

  def forward(self, x: Array) -> Array: ...
  def adjoint(self, y: Array) -> Array: ...
  def pinv(self, y: Array, reg: float | Array = 0.0) -> Array: ...
  def noise(self, key: Array, y: Array) -> Array: ...


class PytreeOperator:
  """Base of the operators: each subclass is a pytree whose `_leaves` attributes are arrays
  (traced under jit) and whose `_static` attributes are hashable settings (auxiliary data).

  Subclasses name their attributes and are registered here, once, when they are defined;
  unflattening sets the attributes directly (no `__init__`: derived arrays such as an SVD
  are not recomputed, and jax's placeholder leaves pass unchecked).
  """
  _leaves: tuple[str, ...] = ()
  _static: tuple[str, ...] = ()

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    jax.tree_util.register_pytree_node(cls, cls._tree_flatten, cls._tree_unflatten)

  def _tree_flatten(self):
    return (tuple(getattr(self, name) for name in self._leaves),
            tuple(getattr(self, name) for name in self._static))

  @classmethod
  def _tree_unflatten(cls, static, leaves):
    obj = object.__new__(cls)
    for name, value in zip(cls._static + cls._leaves, tuple(static) + tuple(leaves)):
      setattr(obj, name, value)
    return obj


def _real_noise(key: Array, y: Array) -> Array:
  if jnp.iscomplexobj(y):
    k_re, k_im = jax.random.split(key)
    real_dtype = jnp.real(y).dtype
    return (jax.random.normal(k_re, y.shape, real_dtype)
            + 1j * jax.random.normal(k_im, y.shape, real_dtype)).astype(y.dtype)
  return jax.random.normal(key, y.shape, y.dtype)


def per_example(reg, like: Array) -> Array:
  """A scalar, or a (B,) array of one value per example, shaped to broadcast against `like`."""
  reg = jnp.asarray(reg, jnp.real(like).dtype)
  if reg.ndim == 0:
    return reg
  chex.assert_shape(reg, (like.shape[0],))
  return reg.reshape((-1,) + (1,) * (like.ndim - 1))


def measure(key: Array, A: LinearOperator, x: Array, noise_std: float = 0.0) -> Array:
  """y = A x + noise_std n, n standard normal in every real measured coordinate."""
  y = A.forward(x)
  if float(noise_std) == 0.0:
    return y
  return y + noise_std * A.noise(key, y)


def inner(a: Array, b: Array) -> Array:
  """The real inner product sum(Re(conj(a) b)) over everything (the adjoint's convention)."""
  return jnp.sum(jnp.real(jnp.conj(a) * b))


def operator_norm(A: LinearOperator, shape: tuple[int, ...], *, steps: int = 50) -> float:
  """||A||_2, the largest singular value, by power iteration on A^T A from a random start."""
  @jax.jit
  def run(x):
    def body(x, _):
      x = A.adjoint(A.forward(x))
      return x / jnp.linalg.norm(x), None
    x, _ = jax.lax.scan(body, x / jnp.linalg.norm(x), None, length=steps)
    return jnp.sqrt(jnp.linalg.norm(A.adjoint(A.forward(x))))
  return float(run(jax.random.normal(jax.random.key(0), (1,) + tuple(shape[1:]))))


# --- pixel mask -------------------------------------------------------------------------------

class PixelMask(PytreeOperator):
  """y = x * mask: the known pixels, zero elsewhere (inpainting's measurement).

  mask: 0/1, broadcastable to a batch's data shape (e.g. (H, W, 1) or (H, W, C)).
  A A^T = diag(mask) is a projection, so A^+ = A^T and the regularized pseudo-inverse
  is mask * y / (1 + reg).
  """

  _leaves = ('mask',)

  def __init__(self, mask):
    self.mask = jnp.asarray(mask, jnp.float32)

  def _mask(self, like: Array) -> Array:
    """The mask with leading axes added to like's rank (no implicit rank promotion)."""
    if self.mask.ndim > like.ndim:
      raise ValueError(f"PixelMask of shape {self.mask.shape} does not fit data {like.shape}")
    return self.mask.reshape((1,) * (like.ndim - self.mask.ndim) + self.mask.shape).astype(like.dtype)

  def forward(self, x: Array) -> Array:
    return x * self._mask(x)

  def adjoint(self, y: Array) -> Array:
    return y * self._mask(y)

  def pinv(self, y: Array, reg=0.0) -> Array:
    return y * self._mask(y) / (1.0 + per_example(reg, y))

  def noise(self, key: Array, y: Array) -> Array:
    return _real_noise(key, y) * self._mask(y)


# --- undersampled Fourier (MRI) ----------------------------------------------------------------

def _check_images(x: Array, where: str) -> None:
  if x.ndim != 4 or x.shape[-1] != 1:
    raise ValueError(f"{where} takes real images (B, H, W, 1); got shape {x.shape}")


def _mirror(a: Array) -> Array:
  """a(-k) on the FFT's frequency grid of the first two axes: index i -> (-i) mod n."""
  return jnp.roll(jnp.flip(a, axis=(0, 1)), shift=(1, 1), axis=(0, 1))


class SubsampledFourier(PytreeOperator):
  """y = mask * FFT2(x) with the orthonormal FFT: undersampled k-space of real images (MRI).

  mask: (H, W) 0/1 over the FFT's own frequency order (DC at [0, 0], as `jnp.fft.fft2`),
  e.g. `cartesian_line_mask`. y is complex (B, H, W, 1), zero where the mask is 0.

  The adjoint for the real inner product is A^T y = Re(IFFT2(mask y)). A real image's
  spectrum is Hermitian (X(-k) = conj X(k)), so A^T A = F^H diag(c) F with
  c(k) = (mask(k) + mask(-k)) / 2 in {0, 1/2, 1}: a line measured without its mirror still
  tells both. Hence (A^T A + reg I)^{-1} A^T y = Re IFFT2(FFT2(A^T y) / (c + reg)), exact for
  any mask (for a mirror-symmetric mask c = mask and A^+ = A^T).
  """

  _leaves = ('mask',)

  def __init__(self, mask):
    mask = jnp.asarray(mask, jnp.float32)
    if mask.ndim != 2:
      raise ValueError(f"SubsampledFourier takes an (H, W) k-space mask; got shape {mask.shape}")
    self.mask = mask

  @property
  def acceleration(self) -> float:
    """Fraction of k-space left out, as the usual factor H W / (measured frequencies)."""
    return float(self.mask.size / jnp.sum(self.mask))

  def forward(self, x: Array) -> Array:
    _check_images(x, "SubsampledFourier.forward")
    k = jnp.fft.fft2(x, axes=(1, 2), norm="ortho")
    return k * self.mask[None, :, :, None]

  def adjoint(self, y: Array) -> Array:
    x = jnp.fft.ifft2(y * self.mask[None, :, :, None], axes=(1, 2), norm="ortho")
    return jnp.real(x)

  def zero_filled(self, y: Array) -> Array:
    """The classical reconstruction: the inverse FFT of the zero-filled k-space (= A^+ y for
    a mirror-symmetric mask)."""
    return self.pinv(y)

  def pinv(self, y: Array, reg=0.0) -> Array:
    c = 0.5 * (self.mask + _mirror(self.mask))[None, :, :, None]
    k = jnp.fft.fft2(self.adjoint(y), axes=(1, 2), norm="ortho")
    k = jnp.where(c > 0, k / jnp.where(c > 0, c + per_example(reg, k), 1.0), 0.0)
    return jnp.real(jnp.fft.ifft2(k, axes=(1, 2), norm="ortho"))

  def noise(self, key: Array, y: Array) -> Array:
    return _real_noise(key, y) * self.mask[None, :, :, None]


def cartesian_line_mask(size: int, acceleration: float, *, center_fraction: float = 0.08,
                        seed: int = 0, equispaced: bool = False) -> np.ndarray:
  """(size, size) k-space mask of full phase-encoding lines (rows), as in fastMRI's masks
  (Zbontar et al. 2018, Sec. 4.2): the round(size * center_fraction) lowest-frequency
  lines (at least the DC line), then lines drawn at random (or equispaced) until
  round(size / acceleration) are kept. Rows are in the FFT's own order (DC at 0).
  """
  if acceleration < 1:
    raise ValueError(f"acceleration={acceleration} must be >= 1")
  n_lines = max(1, int(round(size / acceleration)))
  n_center = min(n_lines, max(1, int(round(size * center_fraction))))
  freqs = np.fft.fftfreq(size) * size  # the frequency of each row index
  order = np.argsort(np.abs(freqs), kind="stable")  # 0, 1, -1, 2, -2, ...
  chosen = list(order[:n_center])
  rest = [i for i in range(size) if i not in chosen]
  extra = n_lines - n_center
  if extra > 0:
    if equispaced:
      picks = [rest[int(j)] for j in np.linspace(0, len(rest) - 1, extra).round()]
    else:
      picks = list(np.random.default_rng(seed).choice(rest, size=extra, replace=False))
    chosen += picks
  mask = np.zeros((size, size), np.float32)
  mask[np.asarray(chosen, int), :] = 1.0
  return mask


# --- dense matrix ------------------------------------------------------------------------------

class MatrixOperator(PytreeOperator):
  """y = x.reshape(B, -1) @ matrix.T for any dense (M, D) matrix (API.md).

  The thin SVD matrix = U diag(s) V^T, computed once here, gives the regularized
  pseudo-inverse exactly: V diag(s / (s^2 + reg)) U^T y (singular values below
  `rcond` * max(s) are treated as zero, as numpy's pinv does).
  """

  _leaves = ('matrix', 'u', 's', 'vt')

  def __init__(self, matrix, *, rcond: float = 1e-6):
    matrix = jnp.asarray(matrix, jnp.float32)
    if matrix.ndim != 2:
      raise ValueError(f"MatrixOperator takes an (M, D) matrix; got shape {matrix.shape}")
    u, s, vt = jnp.linalg.svd(matrix, full_matrices=False)
    self.matrix, self.u, self.vt = matrix, u, vt
    self.s = jnp.where(s > rcond * jnp.max(s), s, 0.0)

  @property
  def shape(self) -> tuple[int, int]:
    return tuple(self.matrix.shape)

  def forward(self, x: Array) -> Array:
    chex.assert_axis_dimension(x.reshape(x.shape[0], -1), 1, self.matrix.shape[1])
    return x.reshape(x.shape[0], -1) @ self.matrix.T.astype(x.dtype)

  def adjoint(self, y: Array) -> Array:
    chex.assert_shape(y, (None, self.matrix.shape[0]))
    return y @ self.matrix.astype(y.dtype)

  def pinv(self, y: Array, reg=0.0) -> Array:
    chex.assert_shape(y, (None, self.matrix.shape[0]))
    s, reg = self.s[None], per_example(reg, y)  # (1, r); reg scalar or (B, 1)
    gain = jnp.where(s > 0, s / jnp.where(s > 0, s**2 + reg, 1.0), 0.0)
    return ((y @ self.u) * gain) @ self.vt

  def noise(self, key: Array, y: Array) -> Array:
    return _real_noise(key, y)


# --- super-resolution and deblurring -------------------------------------------------------------

class Downsample(PytreeOperator):
  """f x f average pooling of (B, H, W, C) images (H, W multiples of f).

  A^T y repeats each value over its block divided by f^2, so A A^T = I / f^2 and
  A^T (A A^T + reg I)^{-1} y = repeat(y) / (1 + reg f^2).
  """

  _static = ('factor',)

  def __init__(self, factor: int):
    self.factor = int(factor)
    if self.factor < 1:
      raise ValueError(f"factor={factor} must be >= 1")

  def forward(self, x: Array) -> Array:
    b, h, w, c = x.shape
    f = self.factor
    if h % f or w % f:
      raise ValueError(f"Downsample({f}) needs H and W divisible by {f}; got {x.shape}")
    return x.reshape(b, h // f, f, w // f, f, c).mean(axis=(2, 4))

  def _repeat(self, y: Array) -> Array:
    f = self.factor
    return jnp.repeat(jnp.repeat(y, f, axis=1), f, axis=2)

  def adjoint(self, y: Array) -> Array:
    return self._repeat(y) / self.factor**2

  def pinv(self, y: Array, reg=0.0) -> Array:
    return self._repeat(y) / (1.0 + per_example(reg, y) * self.factor**2)

  def noise(self, key: Array, y: Array) -> Array:
    return _real_noise(key, y)


class GaussianBlur(PytreeOperator):
  """Circular convolution of (B, H, W, C) images with a Gaussian of standard deviation `std`
  pixels, applied in the Fourier basis: A = F^H diag(h) F with h the kernel's (real,
  symmetric) transfer function, so A^T = A and A^T (A A^T + reg)^{-1} = F^H diag(h / (h^2 +
  reg)) F, where transfer values below `rcond` count as zero (a pseudo-inverse, not a
  division by nearly nothing).
  """

  _static = ('size', 'std', 'rcond')

  def __init__(self, size: int, std: float, *, rcond: float = 1e-3):
    self.size, self.std, self.rcond = int(size), float(std), float(rcond)

  def _transfer(self) -> np.ndarray:
    f = np.fft.fftfreq(self.size)
    g = np.exp(-2.0 * (math.pi * self.std) ** 2 * f**2)  # FT of a unit-mass Gaussian
    return (g[:, None] * g[None, :]).astype(np.float32)

  def _apply(self, x: Array, gain: Array) -> Array:
    if x.shape[1:3] != (self.size, self.size):
      raise ValueError(f"GaussianBlur({self.size}) takes (B, {self.size}, {self.size}, C); "
                       f"got {x.shape}")
    gain = gain if gain.ndim == 4 else gain[None, :, :, None]
    k = jnp.fft.fft2(x, axes=(1, 2)) * gain
    return jnp.real(jnp.fft.ifft2(k, axes=(1, 2))).astype(x.dtype)

  def forward(self, x: Array) -> Array:
    return self._apply(x, jnp.asarray(self._transfer()))

  def adjoint(self, y: Array) -> Array:
    return self.forward(y)

  def pinv(self, y: Array, reg=0.0) -> Array:
    h = jnp.asarray(self._transfer())[None, :, :, None]
    keep = h > self.rcond
    reg = per_example(reg, y)
    return self._apply(y, jnp.where(keep, h / jnp.where(keep, h**2 + reg, 1.0), 0.0))

  def noise(self, key: Array, y: Array) -> Array:
    return _real_noise(key, y)
