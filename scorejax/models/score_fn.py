"""Model output -> score function, per SDE and training mode.

Each SDE states how score_sde's networks see it (`model_labels`, `model_output`,
`model_output_std`); this module only applies that. Song et al. 2021 (score_sde):

* VE, continuous: labels are sigma(t); the network output is the score (NCSN++
  divides by sigma itself when `scale_by_sigma`).
* VE, discrete (SMLD/NCSN): labels are the integer index round((T - t)(N - 1)) of
  the *decreasing* sigma table; the network output is the score.
* VP / sub-VP, continuous: labels are 999 t; the network predicts the noise z of
  x_t = alpha x_0 + std z, so score = -output / std(t).
* VP, discrete (DDPM): labels are the integer step t (N - 1); std is
  sqrt(1 - alphabar_i).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from scorejax import parameterization
from scorejax import sde as sde_lib

Array = jax.Array


def get_model_fn(model, variables: dict, *, train: bool = False,
                 dropout_key: Array | None = None) -> Callable[..., Array]:
  """`model_fn(x, labels, class_labels=None) -> output` for a flax module with
  `__call__(x, labels, train[, class_labels])`.

  `labels` are the noise-level labels score_sde passes; `class_labels` (B,) int are
  the class labels of a label-conditional network (`config.model.num_classes > 0`;
  -1 = no label), passed only when given. In training mode dropout draws from
  `dropout_key`; mutable collections are not updated here (the losses handle model
  state explicitly).
  """
  def model_fn(x: Array, labels: Array, class_labels: Array | None = None) -> Array:
    rngs = {"dropout": dropout_key} if (train and dropout_key is not None) else None
    extra = {} if class_labels is None else {"class_labels": class_labels}
    return model.apply(variables, x, labels, train=train, rngs=rngs, **extra)
  return model_fn


def labels_and_std(sde: sde_lib.SDE, t: Array, continuous: bool) -> tuple[Array, Array | None]:
  """The network's conditioning labels at time t, and the std dividing its output.

  Returns `std=None` where the output already is the score (`sde.model_output ==
  "score"`, VE).
  """
  labels = sde.model_labels(t, continuous)
  if sde.model_output == "score":
    return labels, None
  return labels, sde.model_output_std(t, continuous)


def get_score_fn(sde: sde_lib.SDE, model, variables: dict, continuous: bool = True, *,
                 train: bool = False, dropout_key: Array | None = None) -> Callable[..., Array]:
  """`score_fn(x, t, class_labels=None)` approximating grad_x log p_t(x) (or, with
  class labels, grad_x log p_t(x | y)) from a trained network.

  The network sees `sde.model_labels(t)`; its output, of kind `sde.model_output`,
  is converted by `scorejax.parameterization.score_from_output`. For a
  label-conditional network, `class_labels` (B,) int select the class (-1 or None:
  the null label, i.e. the unconditional score of classifier-free guidance; Ho &
  Salimans 2022), so `score_fn(x, t)` is a plain score function and
  `score_fn(x, t, labels)` is `classifier_free_guided_score`'s `cond_score_fn`.
  """
  model_fn = get_model_fn(model, variables, train=train, dropout_key=dropout_key)

  def score_fn(x: Array, t: Array, class_labels: Array | None = None) -> Array:
    output = model_fn(x, sde.model_labels(t, continuous), class_labels)
    alpha = sde_lib.batch_broadcast(sde.alpha(t), x)
    sigma = sde_lib.batch_broadcast(sde.model_output_std(t, continuous), x)
    return parameterization.score_from_output(sde.model_output, x, output, alpha, sigma)
  return score_fn


def get_ncsn_score_fn_sigma(model, variables: dict, sigmas: Any) -> Callable[[Array, Array], Array]:
  """`score_fn_sigma(x, sigma)` for a noise-conditional network indexed by the sigma table.

  NCSN/NCSNv2 condition on the index of sigma in the decreasing table `sigmas`;
  the index nearest to each requested sigma (in log space) is used.
  """
  log_sigmas = jnp.log(jnp.asarray(sigmas))
  model_fn = get_model_fn(model, variables, train=False)

  def score_fn_sigma(x: Array, sigma: Array) -> Array:
    sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), (x.shape[0],))
    labels = jnp.argmin(jnp.abs(jnp.log(sigma)[:, None] - log_sigmas[None, :]), axis=-1)
    return model_fn(x, labels)
  return score_fn_sigma
