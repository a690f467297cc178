"""Pictures: sample grids, denoising trajectories, 2-D samples and score fields (PNG)."""

from __future__ import annotations

import math
import os
from typing import Callable, Sequence

import numpy as np


def image_grid(images: np.ndarray, *, nrow: int | None = None, padding: int = 2) -> np.ndarray:
  """Tiles (B, H, W, C) images with values in [0, 1] into one (H', W', C) uint8 array."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  if images.ndim != 4:
    raise ValueError(f"expected images of shape (B, H, W, C), got {images.shape}")
  b, h, w, c = images.shape
  nrow = nrow or int(math.ceil(math.sqrt(b)))
  ncol = int(math.ceil(b / nrow))
  grid = np.ones((ncol * (h + padding) + padding, nrow * (w + padding) + padding, c), np.float32)
  for i in range(b):
    r, q = divmod(i, nrow)
    y, x = padding + r * (h + padding), padding + q * (w + padding)
    grid[y:y + h, x:x + w] = images[i]
  return (grid * 255 + 0.5).astype(np.uint8)


def save_image_grid(images: np.ndarray, path: str, *, nrow: int | None = None) -> str:
  """Writes images in [0, 1] as one PNG grid; returns the path."""
  from PIL import Image
  grid = image_grid(images, nrow=nrow)
  if grid.shape[-1] == 1:
    grid = grid[..., 0]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(grid).save(path)
  return path


def save_trajectory_strip(xs: np.ndarray, ts: Sequence[float], path: str) -> str:
  """One row per example of x_t along a reverse run: xs is (T, B, H, W, C) in [0, 1]."""
  xs = np.asarray(xs)
  steps, b = xs.shape[:2]
  rows = np.transpose(xs, (1, 0, 2, 3, 4)).reshape((b * steps,) + xs.shape[2:])
  return save_image_grid(rows, path, nrow=steps)


def save_scatter_2d(samples: np.ndarray, path: str, *, reference: np.ndarray | None = None,
                    title: str = "", lim: float = 3.5) -> str:
  """Scatter of 2-D samples (and, in grey, reference samples)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
  if reference is not None:
    ax.scatter(reference[:, 0], reference[:, 1], s=2, c="0.7", label="data")
  ax.scatter(samples[:, 0], samples[:, 1], s=2, c="C0", label="samples")
  ax.set_xlim(-lim, lim)
  ax.set_ylim(-lim, lim)
  ax.set_aspect("equal")
  ax.set_title(title)
  ax.legend(loc="upper left", markerscale=4)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return path


def save_score_field_2d(score_fns: dict[str, Callable[[np.ndarray], np.ndarray]], path: str, *,
                        lim: float = 3.5, n: int = 21, title: str = "") -> str:
  """Quiver plots of 2-D score fields side by side, e.g. {'learned': f, 'true': g}.

  Each callable maps (n*n, 2) points to (n*n, 2) scores (at a fixed time).
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  g = np.linspace(-lim, lim, n)
  xx, yy = np.meshgrid(g, g)
  pts = np.stack([xx.ravel(), yy.ravel()], -1).astype(np.float32)
  fig, axes = plt.subplots(1, len(score_fns), figsize=(4.5 * len(score_fns), 4.5), dpi=100,
                           squeeze=False)
  for ax, (name, fn) in zip(axes[0], score_fns.items()):
    s = np.asarray(fn(pts))
    ax.quiver(pts[:, 0], pts[:, 1], s[:, 0], s[:, 1], np.linalg.norm(s, axis=-1), angles="xy")
    ax.set_aspect("equal")
    ax.set_title(f"{name} {title}".strip())
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return path


def save_reconstruction_strip(columns: dict[str, np.ndarray], captions: dict[str, Sequence[str]],
                              path: str, *, headers: dict[str, str] | None = None,
                              title: str = "") -> str:
  """A table of images: one column per entry of `columns` (name -> (B, H, W, C) in [0, 1],
  e.g. truth, classical reconstruction, each solver), one row per example, each image
  captioned by `captions[name][b]` (e.g. its PSNR / SSIM) and each column headed by
  `headers[name]` (default: the name)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = list(columns)
  rows = int(np.asarray(columns[names[0]]).shape[0])
  fig, axes = plt.subplots(rows, len(names), figsize=(1.9 * len(names), 1.75 * rows + 0.6),
                           dpi=100, squeeze=False)
  for j, name in enumerate(names):
    images = np.clip(np.asarray(columns[name], np.float32), 0.0, 1.0)
    for i in range(rows):
      ax = axes[i, j]
      image = images[i]
      ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0.0,
                vmax=1.0, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      caption = captions.get(name)
      if caption is not None:
        ax.set_xlabel(caption[i], fontsize=7)
      if i == 0:
        ax.set_title((headers or {}).get(name, name), fontsize=8)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
  plt.close(fig)
  return path
