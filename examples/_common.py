"""What the example scripts share: the --out argument, timing, and matplotlib set-up."""

from __future__ import annotations

import argparse
import os
import sys
import time

DEFAULT_OUT = os.path.join("runs", "experiments")


def parser(description: str, *, workdir: str | None = None) -> argparse.ArgumentParser:
  """--out, and --workdir (default runs/experiments/<workdir>) for scripts that train."""
  p = argparse.ArgumentParser(description=description)
  p.add_argument("--out", default=DEFAULT_OUT,
                 help=f"directory for the PNGs (default {DEFAULT_OUT}; the docs use docs/images)")
  if workdir is not None:
    p.add_argument("--workdir", default=os.path.join(DEFAULT_OUT, workdir),
                   help="training run directory (reused when rerun)")
  return p


def pyplot():
  """matplotlib's pyplot on the Agg backend (no display needed)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def save(fig, out: str, name: str, dpi: int = 80, colors: int = 64) -> str:
  """Saves `fig` as out/name with a `colors`-entry palette (small PNGs for the docs),
  closes it, prints and returns the path."""
  from PIL import Image
  os.makedirs(out, exist_ok=True)
  path = os.path.join(out, name)
  fig.savefig(path, dpi=dpi)
  pyplot().close(fig)
  with Image.open(path) as im:
    small = im.convert("RGB").quantize(colors)
  small.save(path, optimize=True)
  print(f"wrote {path}")
  return path


class Timer:
  """Prints the wall time of a script on exit: `with Timer("name"): ...`."""

  def __init__(self, name: str):
    self.name = name

  def __enter__(self):
    self.start = time.perf_counter()
    return self

  def __exit__(self, *exc):
    print(f"{self.name}: {time.perf_counter() - self.start:.1f} s", file=sys.stderr)
    return False
