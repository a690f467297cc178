"""Distances between sample sets used to judge samplers against known distributions."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from scorejax.toy.mixture import GaussianMixture

Array = jax.Array


def component_frequencies(mix: GaussianMixture, x: Array) -> Array:
  """(K,) fraction of samples whose most probable component is k."""
  labels = jnp.argmax(mix.responsibilities(x.reshape(x.shape[0], -1)), axis=-1)
  return jnp.bincount(labels, length=mix.num_components) / x.shape[0]


def weights_total_variation(mix: GaussianMixture, x: Array) -> Array:
  """TV = 1/2 sum_k |w_hat_k - w_k| between recovered and true mixture weights."""
  return 0.5 * jnp.sum(jnp.abs(component_frequencies(mix, x) - mix.weights))


def sliced_wasserstein2(key: Array, x: Array, y: Array, num_projections: int = 256) -> Array:
  """Sliced Wasserstein-2 distance between two equal-size sample sets (Rabin et al. 2011).

  SW_2(x, y)^2 = E_theta[W_2^2(theta^T x, theta^T y)], theta uniform on the sphere;
  each 1-D W_2 is computed exactly by sorting.
  """
  x = x.reshape(x.shape[0], -1)
  y = y.reshape(y.shape[0], -1)
  if x.shape != y.shape:
    raise ValueError(f"sample sets must have equal shapes, got {x.shape} and {y.shape}")
  theta = jax.random.normal(key, (x.shape[1], num_projections))
  theta = theta / jnp.linalg.norm(theta, axis=0, keepdims=True)
  px = jnp.sort(x @ theta, axis=0)
  py = jnp.sort(y @ theta, axis=0)
  return jnp.sqrt(jnp.mean(jnp.square(px - py)))
