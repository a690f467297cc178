"""Score-matching objectives: continuous DSM, discrete SMLD/DDPM, sliced and exact SM.

References (cited by equation below):
  [SDE]   Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole, "Score-Based Generative
          Modeling through Stochastic Differential Equations", ICLR 2021.
  [MLE]   Song, Durkan, Murray & Ermon, "Maximum Likelihood Training of Score-Based
          Diffusion Models", NeurIPS 2021.
  [NCSN]  Song & Ermon, "Generative Modeling by Estimating Gradients of the Data
          Distribution", NeurIPS 2019.
  [DDPM]  Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
  [SSM]   Song, Garg, Shi & Ermon, "Sliced Score Matching: A Scalable Approach to
          Density and Score Estimation", UAI 2019.
  [CFG]   Ho & Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 Workshop (2022).
  [H05]   Hyvarinen, "Estimation of Non-Normalized Statistical Models by Score
          Matching", JMLR 2005.

Two layers:

* Model-agnostic objectives on any score function: `dsm_loss` / `dsm_losses`
  (batched `score_fn(x, t)`), `sliced_score_matching_loss`,
  `exact_score_matching_loss` (per-example `score_fn_single(x) -> like x`) and
  `sliced_sde_loss` (sliced SM on the perturbed data of an SDE). Each is a
  per-example function `*_single` / `*_example_loss` mapped with `jax.vmap`.
* Training losses over a flax model, score_sde's `get_sde_loss_fn`,
  `get_smld_loss_fn`, `get_ddpm_loss_fn`:
  `loss_fn(params, model_state, key, batch) -> (loss, new_model_state)`.

Reduction over data dimensions follows score_sde: `reduce_mean=True` averages the
per-example squared error over the data dimensions, `reduce_mean=False` takes
*half* its sum (score_sde's `0.5 * sum`, which makes the DSM objective
1/2 E||s - grad log p||^2 up to a constant, on the scale of [H05] Eq. 2). The batch
is always averaged.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import chex
import jax
import jax.numpy as jnp

from scorejax import sde as sde_lib
from scorejax import time_sampling as time_sampling_lib
from scorejax.models.score_fn import get_model_fn, get_score_fn

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]          # batched: (B, ...), (B,) -> (B, ...)
SingleScoreFn = Callable[[Array], Array]           # one example: x -> like x
LossFn = Callable[[Any, Mapping[str, Any], Array, Array], tuple[Array, Mapping[str, Any]]]

PROJECTIONS = ("gaussian", "rademacher")
# Time floor of the continuous losses, t ~ U(eps, T) (score_sde's 1e-5): the DSM
# target -z / sigma(t) is unbounded as t -> 0. The config's `training.eps`.
TRAINING_EPS = 1e-5


# --- helpers ------------------------------------------------------------------------

def _reduce(sq: Array, reduce_mean: bool) -> Array:
  """score_sde's reduce_op on one example: mean, or half the sum, over all its entries."""
  return jnp.mean(sq) if reduce_mean else 0.5 * jnp.sum(sq)


def _per_example_score(score_fn: ScoreFn) -> Callable[[Array, Array], Array]:
  """score_fn(x, t) on one example (x like a data point, t a scalar)."""
  return lambda x, t: score_fn(x[None], t[None])[0]


# --- denoising score matching ([SDE] Eq. 7) -------------------------------------------

def dsm_example_loss(score: Array, z: Array, std: Array, diffusion: Array, *,
                     likelihood_weighting: bool = False, reduce_mean: bool = False) -> Array:
  """One example's DSM term ([SDE] Eq. 7) given the model's score at x_t = mean + std z.

  The target is grad log p_{0t}(x_t | x_0) = -z / std. With lambda(t) = std^2 (the
  weighting of [SDE], Sec. 3.3):       reduce((score * std + z)^2);
  with likelihood weighting lambda = g(t)^2 ([MLE] Thm. 1, Eq. 9):
                                       reduce((score + z / std)^2) * g(t)^2.
  `std` and `diffusion` (g) are scalars.
  """
  chex.assert_equal_shape([score, z])
  if likelihood_weighting:
    return _reduce(jnp.square(score + z / std), reduce_mean) * jnp.square(diffusion)
  return _reduce(jnp.square(score * std + z), reduce_mean)


def perturb(sde: sde_lib.SDE, key: Array, x0: Array, *, eps: float = TRAINING_EPS
            ) -> tuple[Array, Array, Array, Array]:
  """Draws t ~ U(eps, T), z ~ N(0, I) and x_t = mean(x_0, t) + std(t) z ([SDE] Eq. 7).

  Returns (xt, t, z, std) with t, std shaped (B,).
  """
  xt, t, z, std, _ = perturb_weighted(sde, key, x0, eps=eps)
  return xt, t, z, std


def perturb_weighted(sde: sde_lib.SDE, key: Array, x0: Array, *, eps: float = TRAINING_EPS,
                     importance_weighting: bool = False, time_sampling: str = "iid"
                     ) -> tuple[Array, Array, Array, Array, Array]:
  """`perturb` with the time draw of `scorejax.time_sampling.sample_times`.

  Returns (xt, t, z, std, w): w (B,) is 1 for t ~ U(eps, T), and 1 / ((T - eps) q(t))
  for t ~ q ∝ g^2 / sigma^2 with `importance_weighting` ([MLE] Sec. 5), so that
  w-weighted means estimate the same expectation as uniform t. `time_sampling`:
  "iid", "stratified" or "antithetic" draws over the batch.
  """
  k_t, k_z = jax.random.split(key)
  t, w = time_sampling_lib.sample_times(k_t, sde, x0.shape[0], eps=eps,
                                        importance_weighting=importance_weighting,
                                        method=time_sampling)
  z = jax.random.normal(k_z, x0.shape, x0.dtype)
  mean, std = sde.marginal_prob(x0, t)
  return mean + sde_lib.batch_broadcast(std, x0) * z, t, z, std, w


def dsm_losses(score_fn: ScoreFn, sde: sde_lib.SDE, key: Array, x0: Array, *,
               eps: float = TRAINING_EPS, likelihood_weighting: bool = False,
               reduce_mean: bool = False, importance_weighting: bool = False,
               time_sampling: str = "iid") -> Array:
  """Per-example continuous DSM losses (B,) ([SDE] Eq. 7; see `dsm_example_loss`).

  `score_fn(x, t)` is batched; it is evaluated once on the whole perturbed batch.
  With `importance_weighting`, t ~ q(t) ∝ g(t)^2 / sigma(t)^2 and each loss is
  multiplied by 1 / ((T - eps) q(t)) ([MLE] Sec. 5), so its expectation is unchanged
  (that of t ~ U(eps, T)). With likelihood weighting the product is
  Z / (T - eps) reduce((sigma s + z)^2), Z = 2 (lambda(eps) - lambda(T)): bounded,
  where the uniform-t estimate reduce((s + z / sigma)^2) g^2 is not.
  `time_sampling` ("iid", "stratified", "antithetic") correlates the batch's times.
  """
  xt, t, z, std, w = perturb_weighted(sde, key, x0, eps=eps,
                                      importance_weighting=importance_weighting,
                                      time_sampling=time_sampling)
  score = score_fn(xt, t)
  chex.assert_equal_shape([score, x0])
  if importance_weighting and likelihood_weighting:
    # g^2 reduce((s + z/std)^2) / ((T - eps) q) = Z/(T - eps) reduce((std s + z)^2): no
    # division by a small std^2 (the two are equal in exact arithmetic).
    scale = time_sampling_lib.likelihood_weight_normalizer(sde, eps) / (sde.T - eps)
    return scale * jax.vmap(lambda s, zi, si: dsm_example_loss(
        s, zi, si, 1.0, reduce_mean=reduce_mean))(score, z, std)
  diffusion = sde.diffusion_coeff(t)
  return w * jax.vmap(lambda s, zi, si, gi: dsm_example_loss(
      s, zi, si, gi, likelihood_weighting=likelihood_weighting, reduce_mean=reduce_mean))(
          score, z, std, diffusion)


def dsm_loss(score_fn: ScoreFn, sde: sde_lib.SDE, key: Array, x0: Array, *,
             eps: float = TRAINING_EPS, likelihood_weighting: bool = False,
             reduce_mean: bool = False, importance_weighting: bool = False,
             time_sampling: str = "iid") -> Array:
  """Batch mean of `dsm_losses`: the Monte-Carlo estimate of [SDE] Eq. 7."""
  return jnp.mean(dsm_losses(score_fn, sde, key, x0, eps=eps,
                             likelihood_weighting=likelihood_weighting, reduce_mean=reduce_mean,
                             importance_weighting=importance_weighting,
                             time_sampling=time_sampling))


# --- sliced score matching ([SSM] Eqs. 8, 9) ------------------------------------------

def _projections(key: Array, n: int, shape: tuple[int, ...], projection: str,
                 dtype=jnp.float32) -> Array:
  """n random directions v with E[v v^T] = I: standard normal or Rademacher."""
  if projection == "gaussian":
    return jax.random.normal(key, (n,) + shape, dtype)
  if projection == "rademacher":
    return jax.random.rademacher(key, (n,) + shape, dtype)
  raise ValueError(f"projection={projection!r} is not one of {PROJECTIONS}")


def sliced_score_matching_single(score_fn_single: SingleScoreFn, key: Array, x: Array, *,
                                 n_projections: int = 1, projection: str = "gaussian",
                                 variance_reduction: bool = False) -> Array:
  """One example's sliced score matching objective ([SSM] Eq. 8):

      J(x) = mean_v [ v^T grad_x(v^T s(x)) + 1/2 (v^T s(x))^2 ],

  or, with `variance_reduction` (SSM-VR, [SSM] Eq. 9), 1/2 ||s(x)||^2 in place of
  1/2 (v^T s)^2, its expectation over v. v^T grad_x(v^T s) = v^T J_s(x) v costs one
  Jacobian-vector product per projection (forward mode through `jax.linearize`; no
  Jacobian is formed). In expectation over v it equals Hyvarinen's objective
  tr(J_s) + 1/2 ||s||^2 ([H05] Eq. 4).
  """
  v = _projections(key, n_projections, x.shape, projection, x.dtype)
  s, jvp_fn = jax.linearize(score_fn_single, x)
  chex.assert_equal_shape([s, x])
  v_jac_v = jax.vmap(lambda vi: jnp.sum(vi * jvp_fn(vi)))(v)
  if variance_reduction:
    quad = 0.5 * jnp.sum(jnp.square(s))
  else:
    quad = jnp.mean(0.5 * jnp.square(jax.vmap(lambda vi: jnp.sum(vi * s))(v)))
  return jnp.mean(v_jac_v) + quad


def sliced_score_matching_losses(score_fn_single: SingleScoreFn, key: Array, x: Array, *,
                                 n_projections: int = 1, projection: str = "gaussian",
                                 variance_reduction: bool = False) -> Array:
  """Per-example sliced score matching objectives (B,) for a batch x (B, ...)."""
  keys = jax.random.split(key, x.shape[0])
  return jax.vmap(lambda k, xi: sliced_score_matching_single(
      score_fn_single, k, xi, n_projections=n_projections, projection=projection,
      variance_reduction=variance_reduction))(keys, x)


def sliced_score_matching_loss(score_fn_single: SingleScoreFn, key: Array, x: Array, *,
                               n_projections: int = 1, projection: str = "gaussian",
                               variance_reduction: bool = False) -> Array:
  """Batch mean of the sliced score matching objective ([SSM] Eq. 8, or Eq. 9 with VR).

  `score_fn_single` maps one example (any shape) to an array of the same shape.
  """
  return jnp.mean(sliced_score_matching_losses(
      score_fn_single, key, x, n_projections=n_projections, projection=projection,
      variance_reduction=variance_reduction))


def sliced_sde_losses(score_fn: ScoreFn, sde: sde_lib.SDE, key: Array, x0: Array, *,
                      eps: float = TRAINING_EPS, n_projections: int = 1,
                      projection: str = "rademacher", variance_reduction: bool = False,
                      likelihood_weighting: bool = False, reduce_mean: bool = False) -> Array:
  """Per-example sliced score matching on the perturbed data x_t (B,).

  The alternative to DSM in [SDE] (Sec. 3.3, App. "score matching"): for t ~ U(eps, T)
  and x_t ~ p_t, the sliced objective of `sliced_score_matching_single` applied to
  s(., t), weighted by lambda(t) = std(t)^2 (or g(t)^2 with `likelihood_weighting`),
  so that it equals the DSM loss of `dsm_losses` up to a constant independent of s:

      E_t lambda(t) E_{x_t}[v^T J_s v + 1/2 (v^T s)^2]
        = E_t lambda(t) 1/2 E||s - grad log p_t||^2 + const.

  With `reduce_mean` the objective is divided by the data dimension (DSM's mean).
  `score_fn(x, t)` is batched; it is applied here one example at a time (vmapped),
  so the Jacobian-vector products never mix examples.
  """
  k_perturb, k_proj = jax.random.split(key)
  xt, t, _, std = perturb(sde, k_perturb, x0, eps=eps)
  single = _per_example_score(score_fn)
  keys = jax.random.split(k_proj, x0.shape[0])
  objective = jax.vmap(lambda k, xi, ti: sliced_score_matching_single(
      lambda y: single(y, ti), k, xi, n_projections=n_projections, projection=projection,
      variance_reduction=variance_reduction))(keys, xt, t)
  weight = jnp.square(sde.diffusion_coeff(t)) if likelihood_weighting else jnp.square(std)
  if reduce_mean:
    weight = weight / math.prod(x0.shape[1:])
  return weight * objective


def sliced_sde_loss(score_fn: ScoreFn, sde: sde_lib.SDE, key: Array, x0: Array, *,
                    eps: float = TRAINING_EPS, n_projections: int = 1, projection: str = "rademacher",
                    variance_reduction: bool = False, likelihood_weighting: bool = False,
                    reduce_mean: bool = False) -> Array:
  """Batch mean of `sliced_sde_losses`."""
  return jnp.mean(sliced_sde_losses(
      score_fn, sde, key, x0, eps=eps, n_projections=n_projections, projection=projection,
      variance_reduction=variance_reduction, likelihood_weighting=likelihood_weighting,
      reduce_mean=reduce_mean))


# --- exact (implicit) score matching ([H05] Eq. 4) ------------------------------------

def exact_score_matching_single(score_fn_single: SingleScoreFn, x: Array) -> Array:
  """Hyvarinen's objective for one example ([H05] Eq. 4): tr(J_s(x)) + 1/2 ||s(x)||^2.

  The full Jacobian is formed with `jax.jacfwd` (D forward passes): for
  low-dimensional data only.
  """
  shape = x.shape

  def flat_score(y: Array) -> Array:
    return score_fn_single(y.reshape(shape)).reshape(-1)

  y = x.reshape(-1)
  s = flat_score(y)
  chex.assert_equal_shape([s, y])
  return jnp.trace(jax.jacfwd(flat_score)(y)) + 0.5 * jnp.sum(jnp.square(s))


def exact_score_matching_losses(score_fn_single: SingleScoreFn, x: Array) -> Array:
  """Per-example exact score matching objectives (B,) for a batch x (B, ...)."""
  return jax.vmap(lambda xi: exact_score_matching_single(score_fn_single, xi))(x)


def exact_score_matching_loss(score_fn_single: SingleScoreFn, x: Array) -> Array:
  """Batch mean of Hyvarinen's implicit score matching objective ([H05] Eq. 4)."""
  return jnp.mean(exact_score_matching_losses(score_fn_single, x))


# --- training losses over a flax model (score_sde's factories) --------------------------

def _variables(params: Any, model_state: Mapping[str, Any]) -> dict:
  return {"params": params, **model_state}


NULL_LABEL = -1  # the class label meaning "no label" (classifier-free guidance's null token)


def drop_labels(key: Array, class_labels: Array, rate: float) -> Array:
  """Each label replaced by `NULL_LABEL` with probability `rate` ([CFG] Alg. 1, p_uncond).

  Training one network on labelled and unlabelled examples gives both the
  conditional and the unconditional score that classifier-free guidance combines.
  """
  if rate <= 0.0:
    return class_labels
  drop = jax.random.bernoulli(key, rate, class_labels.shape)
  return jnp.where(drop, NULL_LABEL, class_labels)


def split_batch(batch: Any) -> tuple[Array, Array | None]:
  """(images, class labels or None) of a batch: an array, or `{"image", "label"}`."""
  if isinstance(batch, Mapping):
    return batch["image"], batch["label"]
  return batch, None


def get_sde_loss_fn(sde: sde_lib.SDE, model, *, train: bool = True, reduce_mean: bool = False,
                    continuous: bool = True, likelihood_weighting: bool = False,
                    eps: float = TRAINING_EPS, importance_weighting: bool = False,
                    time_sampling: str = "iid", label_dropout: float = 0.0) -> LossFn:
  """`loss_fn(params, model_state, key, batch) -> (loss, new_model_state)`.

  `continuous=True`: denoising score matching with t ~ U(eps, T) ([SDE] Eq. 7), with
  the network turned into a score by `get_score_fn` (labels and output scaling per
  SDE), weighted by std^2 or, with `likelihood_weighting`, by g^2 ([MLE] Eq. 9).
  `importance_weighting` draws t with density ∝ g^2 / sigma^2 and reweights, so the
  expected loss is unchanged ([MLE] Sec. 5; with likelihood weighting, the
  maximum-likelihood training of [MLE]); `time_sampling` ("iid", "stratified",
  "antithetic") correlates the batch's times (`scorejax.time_sampling`).
  `continuous=False`: the discrete loss of the SDE's chain (`DISCRETE_LOSSES`): SMLD
  for a VESDE (`get_smld_loss_fn`) and DDPM for a VPSDE (`get_ddpm_loss_fn`).

  `batch` is the data (B, ...), or `{"image": (B, ...), "label": (B,) int}` for a
  label-conditional network (`config.model.num_classes > 0`), which then learns
  s(x, t, y) ~ grad log p_t(x | y); in training each label is replaced by the null
  label -1 with probability `label_dropout` ([CFG] Ho & Salimans 2022, Alg. 1), so
  the same network also learns the unconditional score. `model_state` holds the
  model's non-param collections (empty for the GroupNorm models here); it is passed
  through unchanged. In training mode the dropout key is split from `key`.
  """
  if time_sampling not in time_sampling_lib.TIME_SAMPLINGS:
    raise ValueError(f"time_sampling={time_sampling!r} is not one of "
                     f"{sorted(time_sampling_lib.TIME_SAMPLINGS)}")
  if not continuous:
    if importance_weighting:
      raise ValueError(
          "training.importance_weighting=True needs training.continuous=True: it samples the "
          "continuous time t. Set training.continuous=True or training.importance_weighting=False.")
    if likelihood_weighting:
      raise ValueError(
          "training.likelihood_weighting=True needs training.continuous=True: the discrete "
          "SMLD/DDPM losses have fixed weightings. Set training.continuous=True or "
          "training.likelihood_weighting=False.")
    if sde.chain is None:
      raise ValueError(
          f"training.continuous=False (the discrete SMLD/DDPM losses) needs an SDE with a "
          f"discrete chain: training.sde='vesde' (SMLD) or 'vpsde' (DDPM), not "
          f"{type(sde).__name__}, which has none. Set training.continuous=True, or use "
          f"training.sde='vpsde' for discrete training.")
    if label_dropout > 0.0:
      raise ValueError("training.label_dropout > 0 (label-conditional models) needs "
                       "training.continuous=True")
    return DISCRETE_LOSSES[sde.chain](sde, model, train=train, reduce_mean=reduce_mean)

  def loss_fn(params, model_state, key, batch):
    x0, class_labels = split_batch(batch)
    if class_labels is not None:  # (an unlabelled batch keeps the unconditional key stream)
      key, k_labels = jax.random.split(key)
      if train:
        class_labels = drop_labels(k_labels, class_labels, label_dropout)
    k_loss, k_dropout = jax.random.split(key)
    model_score_fn = get_score_fn(sde, model, _variables(params, model_state), continuous=True,
                                  train=train, dropout_key=k_dropout if train else None)
    score_fn = model_score_fn if class_labels is None else (
        lambda x, t: model_score_fn(x, t, class_labels))
    loss = dsm_loss(score_fn, sde, k_loss, x0, eps=eps,
                    likelihood_weighting=likelihood_weighting, reduce_mean=reduce_mean,
                    importance_weighting=importance_weighting, time_sampling=time_sampling)
    return loss, model_state
  return loss_fn


def smld_example_loss(score: Array, noise: Array, sigma: Array, *,
                      reduce_mean: bool = False) -> Array:
  """One example's NCSN loss ([NCSN] Eq. 2 with lambda(sigma) = sigma^2, Sec. 4.2).

  With x~ = x + noise, noise ~ N(0, sigma^2 I), the target is -noise / sigma^2:
  sigma^2 reduce((score + noise / sigma^2)^2).
  """
  chex.assert_equal_shape([score, noise])
  return _reduce(jnp.square(score + noise / jnp.square(sigma)), reduce_mean) * jnp.square(sigma)


def get_smld_loss_fn(sde: sde_lib.VESDE, model, *, train: bool = True,
                     reduce_mean: bool = False) -> LossFn:
  """SMLD / NCSN training loss ([NCSN] Eq. 2, lambda = sigma^2) for a VESDE.

  Labels i ~ U{0, ..., N-1} index the *decreasing* noise table
  sigma_0 = sigma_max > ... > sigma_{N-1} = sigma_min (NCSN's convention, as in
  score_sde's `get_smld_loss_fn` and `labels_and_std(continuous=False)`), and the
  network, conditioned on the integer label, outputs the score.
  """
  if sde.chain != "smld":
    raise ValueError(f"the SMLD loss needs an SDE with the SMLD chain (VESDE), got {type(sde).__name__}")
  sigmas_decreasing = sde.discrete_sigmas[::-1]

  def loss_fn(params, model_state, key, batch):
    k_label, k_noise, k_dropout = jax.random.split(key, 3)
    labels = jax.random.randint(k_label, (batch.shape[0],), 0, sde.N)
    sigma = sigmas_decreasing[labels]
    noise = sde_lib.batch_broadcast(sigma, batch) * jax.random.normal(k_noise, batch.shape, batch.dtype)
    model_fn = get_model_fn(model, _variables(params, model_state), train=train,
                            dropout_key=k_dropout if train else None)
    score = model_fn(batch + noise, labels)
    losses = jax.vmap(lambda s, n, sg: smld_example_loss(s, n, sg, reduce_mean=reduce_mean))(
        score, noise, sigma)
    return jnp.mean(losses), model_state
  return loss_fn


def ddpm_example_loss(noise_pred: Array, z: Array, *, reduce_mean: bool = False) -> Array:
  """One example's DDPM simple loss ([DDPM] Eq. 14): reduce((eps_theta(x_i, i) - z)^2)."""
  chex.assert_equal_shape([noise_pred, z])
  return _reduce(jnp.square(noise_pred - z), reduce_mean)


def get_ddpm_loss_fn(sde: sde_lib.VPSDE, model, *, train: bool = True,
                     reduce_mean: bool = False) -> LossFn:
  """DDPM L_simple ([DDPM] Eq. 14) for a VPSDE.

  Labels i ~ U{0, ..., N-1}, x_i = sqrt(abar_i) x_0 + sqrt(1 - abar_i) z, and the
  network, conditioned on the integer step i, predicts z.
  """
  if sde.chain != "ddpm":
    raise ValueError(f"the DDPM loss needs an SDE with the DDPM chain (VPSDE), got {type(sde).__name__}")
  abar = sde.alphas_cumprod

  def loss_fn(params, model_state, key, batch):
    k_label, k_noise, k_dropout = jax.random.split(key, 3)
    labels = jax.random.randint(k_label, (batch.shape[0],), 0, sde.N)
    z = jax.random.normal(k_noise, batch.shape, batch.dtype)
    a = sde_lib.batch_broadcast(abar[labels], batch)
    xt = jnp.sqrt(a) * batch + jnp.sqrt(1.0 - a) * z
    model_fn = get_model_fn(model, _variables(params, model_state), train=train,
                            dropout_key=k_dropout if train else None)
    noise_pred = model_fn(xt, labels)
    losses = jax.vmap(lambda p, zi: ddpm_example_loss(p, zi, reduce_mean=reduce_mean))(
        noise_pred, z)
    return jnp.mean(losses), model_state
  return loss_fn


# --- the noise-conditional classifier of classifier guidance ----------------------------

def classifier_example_loss(logits: Array, label: Array) -> Array:
  """One example's cross-entropy -log p_t(y | x_t) from the classifier's logits (C,)."""
  chex.assert_rank(logits, 1)
  return -jax.nn.log_softmax(logits)[label]


def get_classifier_loss_fn(sde: sde_lib.SDE, model, *, train: bool = True,
                           eps: float = TRAINING_EPS) -> LossFn:
  """`loss_fn(params, model_state, key, batch)`: E_t E_{x_t ~ p_t(x_t | x_0)} -log p_t(y | x_t).

  The time-dependent classifier of [SDE] Sec. 5 / App. I.4: t ~ U(eps, T), x_t drawn
  from the perturbation kernel of `sde` (as the DSM loss draws it, `perturb`), and
  cross-entropy of the label; the network `model(x_t, labels(t), train)` sees the
  noise level as the score model of the same SDE does (`sde.model_labels(t)`:
  sigma for VE, 999 t for VP / sub-VP). Its log-softmax is then log p_t(y | x_t),
  whose gradient guides sampling (`scorejax.controllable.classifier_guided_score`).
  `batch` is `{"image": (B, ...), "label": (B,) int}`.
  """
  def loss_fn(params, model_state, key, batch):
    x0, y = split_batch(batch)
    if y is None:
      raise ValueError("the classifier loss needs labelled batches {'image', 'label'}")
    k_perturb, k_dropout = jax.random.split(key)
    xt, t, _, _ = perturb(sde, k_perturb, x0, eps=eps)
    rngs = {"dropout": k_dropout} if train else None
    logits = model.apply(_variables(params, model_state), xt, sde.model_labels(t, True),
                         train=train, rngs=rngs)
    chex.assert_shape(logits, (x0.shape[0], None))
    return jnp.mean(jax.vmap(classifier_example_loss)(logits, y)), model_state
  return loss_fn


# sde.chain -> the discrete loss of that chain (score_sde's get_smld/ddpm_loss_fn).
DISCRETE_LOSSES: Mapping[str, Callable[..., LossFn]] = {
    "smld": get_smld_loss_fn,
    "ddpm": get_ddpm_loss_fn,
}


__all__ = [
    "TRAINING_EPS", "DISCRETE_LOSSES", "get_sde_loss_fn", "get_smld_loss_fn", "get_ddpm_loss_fn",
    "dsm_loss", "dsm_losses", "dsm_example_loss", "perturb", "perturb_weighted",
    "smld_example_loss", "ddpm_example_loss",
    "sliced_score_matching_loss", "sliced_score_matching_losses", "sliced_score_matching_single",
    "sliced_sde_loss", "sliced_sde_losses",
    "exact_score_matching_loss", "exact_score_matching_losses", "exact_score_matching_single",
    "NULL_LABEL", "drop_labels", "split_batch", "classifier_example_loss", "get_classifier_loss_fn",
]
