"""Divergence detection from the metrics of each training step (host side).

The loss of step s is computed on the state after step s - 1, so a step's metrics
judge the state *before* it: the loop saves the state of step s only after the
metrics of step s + 1 pass `DivergenceGuard.check`. A run stops when

* the loss is NaN or infinite,
* the gradient norm is NaN or infinite (the loss can stay finite while the
  parameters blow up: Adam normalizes the step, so an enormous learning rate gives
  huge but finite parameters and an infinite gradient), or
* the loss exceeds `growth_limit` times the median of the last `window` losses
  (orders of magnitude: a per-batch loss varies by far less, even with likelihood
  weighting, whose per-example weights span ~1e4 over t in [1e-5, 1]).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import statistics


class NonFiniteLossError(FloatingPointError):
  """Training diverged: a non-finite loss or gradient norm, or a loss grown by orders of magnitude."""


@dataclasses.dataclass
class DivergenceGuard:
  growth_limit: float = 1e6
  window: int = 100
  min_history: int = 10
  _recent: collections.deque = dataclasses.field(default_factory=collections.deque)

  def problem(self, loss: float, grad_norm: float | None) -> str | None:
    """What is wrong with a step's metrics (None if nothing); records the loss if fine."""
    if not math.isfinite(loss):
      return f"the training loss became {loss}"
    if grad_norm is not None and not math.isfinite(grad_norm):
      return f"the gradient norm became {grad_norm} (loss {loss:.4g})"
    if len(self._recent) >= self.min_history:
      median = statistics.median(self._recent)
      if median > 0 and loss > self.growth_limit * median:
        return (f"the training loss grew to {loss:.4g}, over {self.growth_limit:.0e} times the "
                f"median {median:.4g} of the previous {len(self._recent)} steps")
    self._recent.append(loss)
    if len(self._recent) > self.window:
      self._recent.popleft()
    return None
