"""The training state: step, params, EMA params, optimizer state — nothing else.

Keys are not stored: each step folds the step number into the run's base key.
Mutable model collections (none for the GroupNorm/InstanceNorm models here) live in
`model_state`.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  ema_params: Any
  opt_state: Any
  model_state: Any = flax.struct.field(default_factory=dict)

  @classmethod
  def create(cls, params: Any, optimizer: optax.GradientTransformation,
             model_state: Any | None = None) -> "TrainState":
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               ema_params=jax.tree.map(jnp.copy, params), opt_state=optimizer.init(params),
               model_state={} if model_state is None else model_state)
