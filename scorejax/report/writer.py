"""Host-side run logging: JSONL metrics, TensorBoard scalars and images, PNG grids.

Only process 0 writes; other processes get a writer whose methods do nothing.
"""

from __future__ import annotations

import json
import os
import time
from typing import Mapping

import numpy as np

from scorejax.report.images import image_grid, save_image_grid


class MetricsWriter:
  """Writes `workdir/metrics.jsonl` and TensorBoard events under `workdir/tensorboard`.

  `resume_step`: the step a resumed run restarts after; rows of later steps (logged
  by the interrupted run after its last checkpoint, and about to be logged again)
  are dropped from `metrics.jsonl`, so each step has one row.
  """

  def __init__(self, workdir: str, *, enabled: bool = True, resume_step: int | None = None):
    self.enabled = enabled
    self.workdir = workdir
    self._tb = None
    self._jsonl = None
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      if resume_step is not None:
        _drop_rows_after(os.path.join(workdir, "metrics.jsonl"), resume_step)
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", buffering=1)
      try:
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
      except ImportError:  # TensorBoard events are optional; JSONL always works
        self._tb = None

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    values = {k: float(v) for k, v in values.items()}
    self._jsonl.write(json.dumps({"step": int(step), "time": time.time(), **values}) + "\n")
    if self._tb is not None:
      for k, v in values.items():
        self._tb.add_scalar(k, v, int(step))

  def image_grid(self, step: int, name: str, images: np.ndarray, path: str) -> None:
    """Saves images in [0, 1] as a PNG grid at `path` and as a TensorBoard image."""
    if not self.enabled:
      return
    save_image_grid(images, path)
    if self._tb is not None:
      self._tb.add_image(name, image_grid(images), int(step), dataformats="HWC")

  def flush(self) -> None:
    if self.enabled and self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      if self._tb is not None:
        self._tb.close()
      self._jsonl.close()


def _drop_rows_after(path: str, step: int) -> None:
  """Rewrites the JSONL file at `path` without the rows of steps after `step`."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = f.readlines()
  kept = []
  for line in lines:
    try:
      row_step = int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
      continue  # a row cut short by a kill
    if row_step <= step:
      kept.append(line if line.endswith("\n") else line + "\n")
  if len(kept) != len(lines):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(kept)
    os.replace(tmp, path)
