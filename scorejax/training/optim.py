"""Optimizer and EMA (score_sde's `optimization_manager`, as an optax chain).

Order of operations per step: clip the gradient by its global norm, add coupled
L2 weight decay (Adam's `weight_decay`), Adam moments, scale by the linearly
warmed-up learning rate lr * min(step / warmup, 1).
"""

from __future__ import annotations

from typing import Any

import jax
import optax

OPTIMIZERS = ("Adam",)


def learning_rate_schedule(lr: float, warmup: int) -> optax.Schedule:
  """lr * min(step / warmup, 1) (score_sde); constant lr when warmup is 0."""
  if warmup <= 0:
    return optax.constant_schedule(lr)
  return optax.linear_schedule(0.0, lr, transition_steps=warmup)


def make_optimizer(*, lr: float, warmup: int = 0, grad_clip: float = -1.0, beta1: float = 0.9,
                   beta2: float = 0.999, eps: float = 1e-8,
                   weight_decay: float = 0.0) -> optax.GradientTransformation:
  """Adam with warmup, global-norm clipping (if grad_clip >= 0) and coupled weight decay."""
  chain = []
  if grad_clip >= 0:
    chain.append(optax.clip_by_global_norm(grad_clip))
  if weight_decay > 0:
    chain.append(optax.add_decayed_weights(weight_decay))
  chain += [optax.scale_by_adam(b1=beta1, b2=beta2, eps=eps),
            optax.scale_by_learning_rate(learning_rate_schedule(lr, warmup))]
  return optax.chain(*chain)


def optimizer_from_config(optim) -> optax.GradientTransformation:
  """Builds the optimizer from `config.optim` (score_sde field names)."""
  if optim.optimizer not in OPTIMIZERS:
    raise ValueError(f"config.optim.optimizer={optim.optimizer!r} is not supported; use one of {OPTIMIZERS}")
  return make_optimizer(lr=float(optim.lr), warmup=int(optim.warmup), grad_clip=float(optim.grad_clip),
                        beta1=float(optim.beta1), eps=float(optim.eps),
                        weight_decay=float(optim.weight_decay))


def ema_update(ema_params: Any, params: Any, rate: float) -> Any:
  """Polyak averaging: ema <- rate * ema + (1 - rate) * params."""
  return jax.tree.map(lambda e, p: rate * e + (1.0 - rate) * p, ema_params, params)
