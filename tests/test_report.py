"""scorejax.report: image grids, trajectory strips, 2-D plots, the metrics writer and figures.

Tiny arrays throughout; every picture is read back (PIL) and checked pixel by
pixel where its layout is defined, by size where matplotlib draws it.
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

from scorejax import sde as sde_lib
from scorejax.report import figures, images
from scorejax.report.writer import MetricsWriter
from scorejax.sampling import pc_sample
from scorejax.toy import mixture


def _tile(grid: np.ndarray, i: int, nrow: int, h: int, w: int, padding: int = 2) -> np.ndarray:
  r, q = divmod(i, nrow)
  y, x = padding + r * (h + padding), padding + q * (w + padding)
  return grid[y:y + h, x:x + w]


def _quantized(x) -> np.ndarray:
  return (np.clip(np.asarray(x, np.float32), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def test_image_grid_layout_padding_and_clipping():
  h, w = 3, 4
  values = np.array([0.0, 0.1, 0.5, 0.9, 1.0], np.float32)
  batch = np.broadcast_to(values[:, None, None, None], (5, h, w, 1)).copy()
  batch[4, 0, 0, 0] = 7.0   # clipped to 1
  batch[0, 0, 0, 0] = -3.0  # clipped to 0
  grid = images.image_grid(batch)
  # ceil(sqrt(5)) = 3 per row, 2 rows; 2-pixel white padding around every tile.
  assert grid.shape == (2 * (h + 2) + 2, 3 * (w + 2) + 2, 1) and grid.dtype == np.uint8
  for i, v in enumerate(values):
    np.testing.assert_array_equal(_tile(grid, i, 3, h, w), _quantized(np.full((h, w, 1), v)), err_msg=i)
  np.testing.assert_array_equal(_tile(grid, 5, 3, h, w), 255)  # the empty slot
  padding = np.ones(grid.shape[:2], bool)
  for i in range(6):
    r, q = divmod(i, 3)
    padding[2 + r * (h + 2):2 + r * (h + 2) + h, 2 + q * (w + 2):2 + q * (w + 2) + w] = False
  assert np.all(grid[padding] == 255)
  assert images.image_grid(batch, nrow=5).shape == (h + 4, 5 * (w + 2) + 2, 1)
  with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
    images.image_grid(batch[0])


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_save_image_grid_round_trips(tmp_path, channels, mode):
  x = np.random.default_rng(channels).random((6, 5, 5, channels), dtype=np.float32)
  path = images.save_image_grid(x, str(tmp_path / "sub" / "grid.png"), nrow=2)
  with Image.open(path) as im:
    assert im.mode == mode
    back = np.asarray(im)
  want = images.image_grid(x, nrow=2)
  np.testing.assert_array_equal(back, want[..., 0] if channels == 1 else want)


def test_trajectory_strip_rows_are_examples_columns_are_times(tmp_path):
  steps, b, h, w = 3, 2, 4, 4
  xs = (np.arange(steps)[:, None] * 0.3 + np.arange(b)[None] * 0.05)[..., None, None, None]
  xs = np.broadcast_to(xs, (steps, b, h, w, 1)).astype(np.float32)
  path = images.save_trajectory_strip(xs, [1.0, 0.5, 1e-3], str(tmp_path / "strip.png"))
  with Image.open(path) as im:
    grid = np.asarray(im)[..., None]
  assert grid.shape == (b * (h + 2) + 2, steps * (w + 2) + 2, 1)
  for example in range(b):
    for t in range(steps):
      np.testing.assert_array_equal(_tile(grid, example * steps + t, steps, h, w),
                                    _quantized(xs[t, example]))


def test_scatter_and_score_field_plots(tmp_path):
  rng = np.random.default_rng(0)
  calls = []

  def field(pts):
    calls.append(pts.shape)
    return -pts

  scatter = images.save_scatter_2d(rng.normal(size=(50, 2)), str(tmp_path / "s.png"),
                                   reference=rng.normal(size=(30, 2)), title="step 1")
  fields = images.save_score_field_2d({"learned": field, "true": field}, str(tmp_path / "f.png"), n=7)
  assert calls == [(49, 2), (49, 2)]  # an n x n grid of points per field
  with Image.open(scatter) as a, Image.open(fields) as b:
    assert a.size == (450, 450) and b.size == (900, 450)  # 4.5 in per panel at 100 dpi
    assert np.asarray(a.convert("L")).min() < 128  # something was drawn


def test_metrics_writer_jsonl_tensorboard_and_disabled(tmp_path):
  writer = MetricsWriter(str(tmp_path / "run"))
  writer.scalars(3, {"loss": np.float32(0.5), "lr": 1e-3})
  writer.scalars(4, {"loss": 0.25})
  grid = np.zeros((4, 2, 2, 1), np.float32)
  writer.image_grid(4, "samples", grid, str(tmp_path / "run" / "g.png"))
  writer.flush()
  writer.close()
  lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert [(r["step"], r["loss"]) for r in lines] == [(3, 0.5), (4, 0.25)]
  assert lines[0]["lr"] == pytest.approx(1e-3) and all(isinstance(r["time"], float) for r in lines)
  with Image.open(tmp_path / "run" / "g.png") as im:
    np.testing.assert_array_equal(np.asarray(im), images.image_grid(grid)[..., 0])
  events = os.listdir(tmp_path / "run" / "tensorboard")
  assert any(name.startswith("events.out.tfevents") for name in events), events
  # A second writer appends to the same log (a resumed run).
  again = MetricsWriter(str(tmp_path / "run"))
  again.scalars(5, {"loss": 0.125})
  again.close()
  assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 3

  off = MetricsWriter(str(tmp_path / "off"), enabled=False)  # processes other than 0
  off.scalars(1, {"loss": 1.0})
  off.image_grid(1, "samples", grid, str(tmp_path / "off" / "g.png"))
  off.close()
  assert not (tmp_path / "off").exists()


@pytest.mark.parametrize("toy_name, panels", [("imbalanced_mixture", 2), ("two_moons", 1)])
def test_2d_figures_draw_the_true_field_for_mixtures_only(tmp_path, toy_name, panels):
  sde = sde_lib.VPSDE()
  mix = mixture.imbalanced_mixture_2d()
  samples = np.asarray(mix.sample(jax.random.key(0), 64))
  paths = figures.write_2d_figures(sde, mixture.marginal_score_fn(mix, sde), samples, 7,
                                   str(tmp_path / "step_7.png"), toy_name=toy_name)
  assert [os.path.basename(p) for p in paths] == [
      "step_7.png", "step_7_score_t0.05.png", "step_7_score_t0.3.png"]
  for p in paths[1:]:
    with Image.open(p) as im:
      assert im.size == (450 * panels, 450), (p, im.size)


def test_trajectory_strip_of_a_pc_run_ends_at_the_pc_sample(tmp_path):
  """figures.write_trajectory: x_T and every 1/10 of the run; the last column is pc_sample's output."""
  sde = sde_lib.VPSDE(N=20)
  mean, std = 0.3, 0.1  # data N(mean, std^2 I): the score of its marginals in closed form

  def score_fn(x, t):
    alpha, sigma = (sde_lib.batch_broadcast(v, x) for v in sde.marginal_coeffs(t))
    return -(x - alpha * mean) / (alpha**2 * std**2 + sigma**2)

  sampling = ml_collections.ConfigDict({"predictor": "reverse_diffusion", "corrector": "langevin",
                                        "snr": 0.16, "n_steps_each": 1})
  key = jax.random.key(3)
  path = figures.write_trajectory(sde, score_fn, key, str(tmp_path / "traj.png"), sampling=sampling,
                                  data_shape=(4, 4, 1), inverse_scaler=lambda x: x, n_examples=3)
  with Image.open(path) as im:
    grid = np.asarray(im)[..., None]
  frames = 11  # the largest divisor of N = 20 up to 10, plus x_T
  assert grid.shape == (3 * 6 + 2, frames * 6 + 2, 1)
  x, _ = jax.jit(lambda k: pc_sample(k, sde, score_fn, (3, 4, 4, 1), predictor="reverse_diffusion",
                                     corrector="langevin", snr=0.16, n_corrector_steps=1))(key)
  first = np.stack([_tile(grid, e * frames, frames, 4, 4) for e in range(3)])
  last = np.stack([_tile(grid, e * frames + frames - 1, frames, 4, 4) for e in range(3)])
  assert np.abs(last.astype(int) - _quantized(x).astype(int)).max() <= 1
  # The first column is the prior draw (std 1, half of it clipped at 0), the last the data's.
  assert np.mean((first == 0) | (first == 255)) > 0.3
  assert abs(last.mean() / 255 - mean) < 0.05 and last.std() / 255 < 2 * std
