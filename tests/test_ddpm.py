"""DDPM port (scorejax.models.ddpm) against score_sde_pytorch (commit cb1f359f) fixtures.

Fixtures live in ../../shared/fixtures/score_sde_pytorch (see its README): a
perturbed state dict, an NCHW input, integer labels and the torch output of a
shrunken config. Missing fixtures fail the tests rather than skipping them.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fixture_utils import (SCORE_SDE_FIXTURES, assert_close, get_config, init_shapes,
                           load_score_sde_fixture, nhwc, param_count)
from scorejax import models
from scorejax import sde as sde_lib

FIXTURES = SCORE_SDE_FIXTURES


@pytest.fixture(scope="module", params=["vp_ddpm_cifar10"])
def converted(request):
  config, meta, state_dict, arrays = load_score_sde_fixture(request.param)
  model = models.get_model(config)
  # Released checkpoints carry DataParallel's 'module.' prefix.
  variables = models.from_score_sde_pytorch({f"module.{k}": v for k, v in state_dict.items()}, config)
  return config, meta, state_dict, arrays, model, variables


def test_every_torch_key_is_consumed(converted):
  config, meta, state_dict, _, _, variables = converted
  weights = {k: v for k, v in state_dict.items() if k != "sigmas"}
  leaves = jax.tree_util.tree_leaves(variables)
  # `convert` rejects unknown keys and duplicate targets, so equal counts mean a bijection.
  assert len(leaves) == len(weights)
  assert param_count(variables) == sum(v.size for v in weights.values())
  assert param_count(variables) == meta["param_count"]["parameters"]
  assert all(leaf.dtype == jnp.float32 for leaf in leaves)


def test_converted_tree_matches_init(converted):
  config, _, _, _, model, variables = converted
  shapes = init_shapes(model, config.data.image_size, config.data.num_channels)
  assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(variables)
  mismatched = [jax.tree_util.keystr(path) for path, (a, b) in jax.tree_util.tree_leaves_with_path(
      jax.tree_util.tree_map(lambda a, b: (a.shape, b.shape), shapes, variables,
                             is_leaf=lambda x: hasattr(x, "shape")),
      is_leaf=lambda x: isinstance(x, tuple)) if a != b]
  assert not mismatched


def test_output_matches_torch(converted):
  _, _, _, arrays, model, variables = converted
  labels = jnp.asarray(arrays["input_labels"].astype(np.int32))
  # Jitted: one compilation (~3 s, cached across runs) instead of ~20 s of op-by-op dispatch.
  y = jax.jit(lambda v, x, l: model.apply(v, x, l, train=False))(variables, nhwc(arrays["input_x"]), labels)
  assert_close(y, arrays["output"])


@pytest.mark.parametrize("config_name,reference", [
    ("ddpm_cifar10", "vp/ddpm/cifar10"),
])
def test_full_size_parameter_counts(config_name, reference):
  counts = json.loads((FIXTURES / "param_counts.json").read_text())["models"]
  config = get_config(config_name)
  assert config.model.name == counts[reference]["model_name"]
  shapes = init_shapes(models.get_model(config), config.data.image_size)  # abstract: nothing allocated
  assert param_count(shapes) == counts[reference]["parameters"]


# Compiling init + apply of the smoke U-Net takes ~20-40 s on 2 cores (~5 s from the persistent
# cache); the fast tier checks the DDPM forward pass against the fixture instead.
@pytest.mark.slow
@pytest.mark.parametrize("config_name", ["ddpm_cifar10"])
def test_smoke_config_init_and_apply(config_name):
  config = get_config(config_name, "smoke")
  model = models.get_model(config)
  s, c = config.data.image_size, config.data.num_channels
  x = jax.random.uniform(jax.random.key(1), (2, s, s, c))
  labels = jnp.array([3, 17], jnp.int32)
  # Jitted (as training runs it): one compilation, which the persistent cache keeps,
  # instead of hundreds of op-by-op dispatches in every fresh worker.
  variables = jax.jit(lambda k: model.init({"params": k}, x, labels, train=False))(jax.random.key(0))
  apply = jax.jit(lambda v, train, k: model.apply(v, x, labels, train=train, rngs={"dropout": k}),
                  static_argnums=1)
  y_eval = apply(variables, False, jax.random.key(2))
  y_train = apply(variables, True, jax.random.key(2))
  assert y_eval.shape == x.shape and y_train.shape == x.shape
  assert np.isfinite(np.asarray(y_eval)).all() and np.isfinite(np.asarray(y_train)).all()
  assert config.model.name == "ddpm"
  # Dropout is active only in training mode.
  assert np.abs(np.asarray(y_eval) - np.asarray(y_train)).max() > 0


def test_ddpm_score_fn_uses_integer_timesteps():
  """VP discrete: labels are the integer step i, score = -eps_theta / sqrt(1 - alphabar_i)."""
  config, _, state_dict, arrays = load_score_sde_fixture("vp_ddpm_cifar10")
  model = models.get_model(config)
  variables = models.from_score_sde_pytorch(state_dict, config)
  sde = sde_lib.VPSDE(beta_min=config.model.beta_min, beta_max=config.model.beta_max,
                      N=config.model.num_scales)
  steps = arrays["input_labels"].astype(np.int64)  # [500, 899]
  t = jnp.asarray(steps / (sde.N - 1), jnp.float32)
  # Jitted: one compilation (~3 s, cached across runs) instead of ~20 s of op-by-op dispatch.
  score = jax.jit(lambda v, x, t: models.get_score_fn(sde, model, v, continuous=False)(x, t))(
      variables, nhwc(arrays["input_x"]), t)
  betas = np.linspace(sde.beta_min / sde.N, sde.beta_max / sde.N, sde.N)
  std = np.sqrt(1.0 - np.cumprod(1.0 - betas))[steps]
  assert_close(score, -arrays["output"] / std[:, None, None, None])
