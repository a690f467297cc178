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


def make_multi_step(train_step) -> Callable[[TrainState, Any, Array, Array], tuple[TrainState, dict]]:
  """`train_steps(state, batches, n_active, key)`: the first `n_active` of n steps in one call.

  score_sde's `n_jitted_steps`: one dispatch (and one host-to-device transfer of the n
  batches, stacked on a new leading axis) per n steps. `n_active` (a traced int, 0..n)
  says how many of the stacked batches to train on, so that one compiled program also
  runs a shorter chunk up to a checkpoint or the end (n = 1 runs its one step without a
  loop, whatever `n_active`). Returns the state after those
  steps and each step's metrics stacked, shape (n,) (zero beyond `n_active`). Each step
  folds its own `state.step` into `key`, so any chunking gives the steps of a one-by-one run.
  """

  def train_steps(state: TrainState, batches: Any, n_active: Array, key: Array) -> tuple[TrainState, dict]:
    n = jax.tree.leaves(batches)[0].shape[0]
    first = jax.tree.map(lambda b: b[0], batches)
    if n == 1:  # no loop: XLA:CPU runs a while loop's body many times slower than the same ops
      state, metrics = train_step(state, first, key)  # (the loop runs chunks of >= 1 step)
      return state, jax.tree.map(lambda m: m[None], metrics)
    shapes = jax.eval_shape(train_step, state, first, key)[1]
    history = jax.tree.map(lambda m: jnp.zeros((n,) + m.shape, m.dtype), shapes)

    def body(i, carry):
      state, history = carry
      state, metrics = train_step(state, jax.tree.map(lambda b: b[i], batches), key)
      return state, jax.tree.map(lambda h, m: h.at[i].set(m), history, metrics)

    return jax.lax.fori_loop(0, n_active, body, (state, history))

  return train_steps
