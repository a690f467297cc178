"""Progress bars of the long evaluation modes (`--mode=eval`, `--mode=likelihood`).

tqdm bars on stderr, drawn by process 0 only (as the training loop's), with the
rate and, where the total is known, the ETA: checkpoints, sampling rounds (with
the sampler's NFE), bits/dim batches and feature batches (Inception / digits
classifier).
"""

from __future__ import annotations

from typing import Iterable

import jax
import tqdm


def bar(iterable: Iterable | None = None, *, desc: str, total: int | None = None,
        unit: str = "it", leave: bool | None = None) -> tqdm.tqdm:
  """A tqdm bar over `iterable` (or updated by hand), silent on every process but 0.

  By default (`leave=None`) a finished bar stays on screen only if it is the
  outermost one: bars nested in another (rounds in checkpoints) are cleared.
  """
  return tqdm.tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, dynamic_ncols=True,
                   mininterval=1.0, disable=jax.process_index() != 0)
