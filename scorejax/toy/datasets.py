"""Standard 2-D toy distributions (samplers only; for exact densities see `mixture`).

Each `sample_*(key, n) -> (n, 2)` float32 array, roughly centred with unit scale.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from scorejax.toy import mixture

Array = jax.Array


def sample_two_moons(key: Array, n: int, noise: float = 0.05) -> Array:
  """Two interleaved half circles."""
  k_side, k_angle, k_noise = jax.random.split(key, 3)
  side = jax.random.bernoulli(k_side, 0.5, (n,))
  theta = jax.random.uniform(k_angle, (n,), maxval=math.pi)
  upper = jnp.stack([jnp.cos(theta), jnp.sin(theta)], -1)
  lower = jnp.stack([1.0 - jnp.cos(theta), 0.5 - jnp.sin(theta)], -1)
  x = jnp.where(side[:, None], upper, lower) - jnp.array([[0.5, 0.25]])
  return x + noise * jax.random.normal(k_noise, (n, 2))


def sample_rings(key: Array, n: int, radii=(0.5, 1.0, 1.5), noise: float = 0.03) -> Array:
  """Concentric circles, points spread in proportion to circumference."""
  radii = jnp.asarray(radii, jnp.float32)
  k_ring, k_angle, k_noise = jax.random.split(key, 3)
  ring = jax.random.categorical(k_ring, jnp.log(radii / radii.sum()), shape=(n,))
  theta = jax.random.uniform(k_angle, (n,), maxval=2 * math.pi)
  x = radii[ring][:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], -1)
  return x + noise * jax.random.normal(k_noise, (n, 2))


def sample_checkerboard(key: Array, n: int, squares: int = 4, half_width: float = 2.0) -> Array:
  """Uniform on the dark squares of a `squares` x `squares` board on [-w, w]^2."""
  k_cell, k_pos = jax.random.split(key)
  cells = jnp.array([(i, j) for i in range(squares) for j in range(squares) if (i + j) % 2 == 0],
                    jnp.float32)
  idx = jax.random.randint(k_cell, (n,), 0, cells.shape[0])
  size = 2 * half_width / squares
  u = jax.random.uniform(k_pos, (n, 2))
  return (cells[idx] + u) * size - half_width


def sample_swiss_roll(key: Array, n: int, noise: float = 0.05) -> Array:
  """The 2-D swiss roll (t cos t, t sin t), t in [1.5 pi, 4.5 pi], scaled to unit size."""
  k_t, k_noise = jax.random.split(key)
  t = 1.5 * math.pi * (1 + 2 * jax.random.uniform(k_t, (n,)))
  x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], -1) / (4.5 * math.pi / 1.5)
  return x + noise * jax.random.normal(k_noise, (n, 2))


def _mixture_sampler(make: Callable[[], mixture.GaussianMixture]) -> Callable[[Array, int], Array]:
  """Samples the mixture `make()`, built on first use (no JAX arrays at import time, so
  `jax.distributed.initialize()` can still run after importing this module)."""
  return lambda key, n: make().sample(key, n)


# Toy sets that are Gaussian mixtures, so their exact scores are known (`mixture`).
ANALYTIC_2D: Mapping[str, Callable[[], mixture.GaussianMixture]] = {
    "imbalanced_mixture": mixture.imbalanced_mixture_2d,
    "eight_gaussians": mixture.eight_gaussians,
}

TOY_2D: Mapping[str, Callable[[Array, int], Array]] = {
    **{name: _mixture_sampler(make) for name, make in ANALYTIC_2D.items()},
    "two_moons": sample_two_moons,
    "rings": sample_rings,
    "checkerboard": sample_checkerboard,
    "swiss_roll": sample_swiss_roll,
}


def sample_toy(name: str, key: Array, n: int) -> Array:
  """Samples the 2-D toy set `name` (one of `TOY_2D`)."""
  if name not in TOY_2D:
    raise ValueError(f"unknown 2-D toy dataset {name!r}; choose one of {sorted(TOY_2D)}")
  return TOY_2D[name](key, n)
