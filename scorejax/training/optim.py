"""Optimizer and EMA (score_sde's `optimization_manager`, as an optax chain).

Order of operations per step: clip the gradient by its global norm, add coupled
L2 weight decay (Adam's `weight_decay`), Adam moments, scale by the linearly
warmed-up learning rate lr * min(step / warmup, 1) — constant after the warm-up
(score_sde), or with `lr_decay='cosine'` decayed to 0 at `decay_steps`.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

OPTIMIZERS = ("Adam",)
LR_DECAYS = ("none", "cosine")


def learning_rate_schedule(lr: float, warmup: int, decay: str = "none",
                           decay_steps: int = 0) -> optax.Schedule:
  """lr * min(step / warmup, 1) (score_sde); constant lr when warmup is 0.

  decay='cosine': after the warm-up, half a cosine from lr down to 0 at step `decay_steps`
  (Loshchilov & Hutter 2017, SGDR, Eq. 5 with one period and eta_min = 0), and 0 after it.
  A short run so ends at a low learning rate, its last updates small: the digits quick start
  reaches in 1000 steps the sample quality that 2000 at a constant rate reached
  (docs/training.md, "The quick start's recipe").
  """
  if decay not in LR_DECAYS:
    raise ValueError(f"config.optim.lr_decay={decay!r} is not one of {LR_DECAYS}")
  if decay == "cosine":
    if decay_steps <= warmup:
      raise ValueError(f"config.optim.decay_steps={decay_steps} must exceed config.optim.warmup="
                       f"{warmup}: the cosine decays lr to 0 between the two (None: the run's "
                       "n_iters)")
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, decay_steps, end_value=0.0)
  if warmup <= 0:
    return optax.constant_schedule(lr)
  return optax.linear_schedule(0.0, lr, transition_steps=warmup)


def schedule_from_config(optim, n_iters: int) -> optax.Schedule:
  """The learning-rate schedule of `config.optim`: `lr`, `warmup`, `lr_decay` and `decay_steps`
  (None: `n_iters`, the run's length). Configs written before `lr_decay` existed have a
  constant rate after the warm-up."""
  decay_steps = optim.get("decay_steps", None)
  return learning_rate_schedule(float(optim.lr), int(optim.warmup),
                                str(optim.get("lr_decay", "none")),
                                int(n_iters if decay_steps is None else decay_steps))


def make_optimizer(*, lr: float | optax.Schedule, warmup: int = 0, grad_clip: float = -1.0,
                   beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                   weight_decay: float = 0.0) -> optax.GradientTransformation:
  """Adam with warmup, global-norm clipping (if grad_clip >= 0) and coupled weight decay.

  lr: a float (warmed up over `warmup` steps, then constant) or a whole schedule."""
  chain = []
  if grad_clip >= 0:
    chain.append(optax.clip_by_global_norm(grad_clip))
  if weight_decay > 0:
    chain.append(optax.add_decayed_weights(weight_decay))
  chain += [optax.scale_by_adam(b1=beta1, b2=beta2, eps=eps),
            optax.scale_by_learning_rate(lr if callable(lr) else learning_rate_schedule(lr, warmup))]
  return optax.chain(*chain)


def optimizer_from_config(optim, n_iters: int) -> optax.GradientTransformation:
  """Builds the optimizer from `config.optim` (score_sde field names) for a run of `n_iters`."""
  if optim.optimizer not in OPTIMIZERS:
    raise ValueError(f"config.optim.optimizer={optim.optimizer!r} is not supported; use one of {OPTIMIZERS}")
  return make_optimizer(lr=schedule_from_config(optim, n_iters), grad_clip=float(optim.grad_clip),
                        beta1=float(optim.beta1), eps=float(optim.eps),
                        weight_decay=float(optim.weight_decay))


def ema_update(ema_params: Any, params: Any, rate: float) -> Any:
  """Polyak averaging: ema <- rate * ema + (1 - rate) * params."""
  return jax.tree.map(lambda e, p: rate * e + (1.0 - rate) * p, ema_params, params)
