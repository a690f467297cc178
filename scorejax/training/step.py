"""The pure training step: loss, gradient, optimizer update, EMA.

    train_step(state, batch, key) -> (state, metrics)

`key` is the run's base key; the step folds `state.step` into it, so a resumed
run draws exactly the noise an uninterrupted one would. Under `jax.jit` with the
batch sharded over the 'data' mesh axis, the gradient's mean over the global
batch is the cross-device all-reduce (XLA inserts it).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from scorejax.training.optim import ema_update
from scorejax.training.state import TrainState

Array = jax.Array
LossFn = Callable[[Any, Any, Array, Array], tuple[Array, Any]]


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation,
                    ema_rate: float) -> Callable[[TrainState, Array, Array], tuple[TrainState, dict]]:
  """`train_step(state, batch, key)` for `loss_fn(params, model_state, key, batch)`."""

  def train_step(state: TrainState, batch: Array, key: Array) -> tuple[TrainState, dict]:
    step_key = jax.random.fold_in(key, state.step)
    (loss, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, state.model_state, step_key, batch)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              model_state=model_state,
                              ema_params=ema_update(state.ema_params, params, ema_rate))
    return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

  return train_step


def make_eval_step(loss_fn: LossFn) -> Callable[[TrainState, Array, Array], dict]:
  """`eval_step(state, batch, key)`: the loss of the EMA parameters (no update)."""

  def eval_step(state: TrainState, batch: Array, key: Array) -> dict:
    loss, _ = loss_fn(state.ema_params, state.model_state, jax.random.fold_in(key, state.step), batch)
    return {"eval_loss": loss}

  return eval_step


def make_multi_step(train_step) -> Callable[[TrainState, Array, Array], tuple[TrainState, dict]]:
  """Runs `n` steps in one call over batches stacked on a leading axis (score_sde's n_jitted_steps)."""

  def multi_step(state: TrainState, batches: Array, key: Array) -> tuple[TrainState, dict]:
    state, metrics = jax.lax.scan(lambda s, b: train_step(s, b, key), state, batches)
    return state, jax.tree.map(lambda m: m[-1], metrics) | {"loss_mean": jnp.mean(metrics["loss"])}

  return multi_step
