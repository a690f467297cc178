"""Image preprocessing in NumPy/PIL, following score_sde's `datasets.py`.

Two stages, as in score_sde:

1. Deterministic geometry on uint8 images (`central_crop`, `resize`,
   `resize_small`, `crop_resize`, `pad_or_resize`): applied by the sources, so a
   source yields uint8 images of the final `image_size`.
2. The random part, per example (`augment_example`): scaling to [0, 1]
   (uint8 / 255), horizontal flip (training only) and uniform dequantization
   `(x * 255 + u) / 256`, u ~ U[0, 1)^D. Its randomness comes from an explicit
   integer seed tuple, so a batch is a pure function of (seed, step, position).

Finally the model sees `get_data_scaler(config)(x)`: x in [0, 1], or 2x - 1 in
[-1, 1] when `config.data.centered` (score_sde's `get_data_scaler`).

Resizing differs from score_sde in one way: score_sde resizes float images with
`tf.image.resize(..., antialias=True)`; here PIL resizes the uint8 image (PIL's
bilinear/bicubic filters are antialiased when shrinking, like `antialias=True`)
and the result stays on the 256-level grid, so bits/dim of dequantized data keep
their meaning. At CIFAR-10/SVHN's native 32x32 the images are untouched.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
             "nearest": Image.Resampling.NEAREST}


def central_crop(image: np.ndarray, size: int) -> np.ndarray:
  """The central `size` x `size` window of an (H, W, C) image (score_sde's `central_crop`)."""
  h, w = image.shape[:2]
  if size > min(h, w):
    raise ValueError(f"cannot crop {size}x{size} from a {h}x{w} image")
  top, left = (h - size) // 2, (w - size) // 2
  return image[top:top + size, left:left + size]


def resize(image: np.ndarray, height: int, width: int, method: str = "bilinear") -> np.ndarray:
  """Resizes an (H, W, C) image, C in {1, 3}, with PIL (antialiased when shrinking).

  uint8 images stay uint8 (rounded by PIL); float32 images stay float32 (no clipping).
  """
  if image.shape[:2] == (height, width):
    return image
  if method not in _RESAMPLE:
    raise ValueError(f"unknown resize method {method!r}; choose one of {sorted(_RESAMPLE)}")
  if image.dtype == np.uint8 and image.shape[-1] == 3:
    planes = [np.ascontiguousarray(image)]  # one RGB image: same result as per plane, faster
  else:
    planes = [np.ascontiguousarray(image[..., c]) for c in range(image.shape[-1])]
  out = [np.asarray(Image.fromarray(p).resize((width, height), _RESAMPLE[method])) for p in planes]
  out = out[0] if out[0].ndim == 3 else np.stack(out, axis=-1)
  return out.astype(image.dtype, copy=False)


def resize_small(image: np.ndarray, size: int, method: str = "bilinear") -> np.ndarray:
  """Resizes so the shorter side is `size`, keeping the aspect ratio (score_sde's `resize_small`)."""
  h, w = image.shape[:2]
  ratio = size / min(h, w)
  return resize(image, int(round(h * ratio)), int(round(w * ratio)), method)


def crop_resize(image: np.ndarray, size: int) -> np.ndarray:
  """Largest central square, then bicubic resize to `size` (score_sde's `crop_resize`, for LSUN)."""
  h, w = image.shape[:2]
  return resize(central_crop(image, min(h, w)), size, size, "bicubic")


def pad_or_resize(image: np.ndarray, size: int) -> np.ndarray:
  """For small square images (MNIST's 28x28): zero-pads to a larger `size`, resizes to a smaller one.

  Padding keeps the digits' pixels exact (28 -> 32 is the classic LeNet padding);
  a smaller size is reached by an antialiased bilinear resize.
  """
  h, w = image.shape[:2]
  if size >= max(h, w):
    top, left = (size - h) // 2, (size - w) // 2
    return np.pad(image, ((top, size - h - top), (left, size - w - left), (0, 0)))
  return resize(image, size, size, "bilinear")


def augment_example(image: np.ndarray, seed: Sequence[int], *, random_flip: bool,
                    uniform_dequantization: bool) -> np.ndarray:
  """uint8 (H, W, C) -> float32 in [0, 1]: score_sde's `preprocess_fn` after resizing.

  Args:
    image: uint8 image.
    seed: integers that determine the randomness of this example, e.g.
      (data seed, purpose tag, step, position in the global batch).
    random_flip: flip left-right with probability 1/2 (pass False at evaluation).
    uniform_dequantization: return (x * 255 + u) / 256 with u ~ U[0, 1)^D, where
      x = image / 255; otherwise x.
  Returns:
    float32 image of the same shape.
  """
  x = image.astype(np.float32)  # = 255 * (image / 255), score_sde's convert_image_dtype then * 255
  if not (random_flip or uniform_dequantization):
    # Nothing random: no generator (seeding one costs more than the rest of the example,
    # and the loader threads share the training step's cores; configs/digits.py).
    return x / np.float32(255.0)
  rng = np.random.default_rng(list(seed))
  flip = rng.random() < 0.5  # always drawn, so the noise below doesn't depend on random_flip
  if random_flip and flip:
    x = x[:, ::-1]
  if uniform_dequantization:
    return (x + rng.random(x.shape, dtype=np.float32)) / np.float32(256.0)
  return x / np.float32(255.0)


def get_data_scaler(config: Any) -> Callable[[Any], Any]:
  """Data in [0, 1] -> the model's input range: [-1, 1] if `config.data.centered`, else unchanged."""
  return make_data_scaler(bool(config.data.centered))


def get_data_inverse_scaler(config: Any) -> Callable[[Any], Any]:
  """Inverse of `get_data_scaler`: the model's range -> [0, 1]."""
  return make_data_inverse_scaler(bool(config.data.centered))


def make_data_scaler(centered: bool) -> Callable[[Any], Any]:
  """x -> 2x - 1 if `centered`, else the identity (works on NumPy and JAX arrays)."""
  if centered:
    return lambda x: x * 2.0 - 1.0
  return lambda x: x


def make_data_inverse_scaler(centered: bool) -> Callable[[Any], Any]:
  """x -> (x + 1) / 2 if `centered`, else the identity."""
  if centered:
    return lambda x: (x + 1.0) / 2.0
  return lambda x: x
