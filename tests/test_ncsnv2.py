"""NCSNv2 port (scorejax.models.ncsnv2) against score_sde_pytorch (commit cb1f359f) fixtures.

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
from scorejax.models import ncsnv2

FIXTURES = SCORE_SDE_FIXTURES


@pytest.fixture(scope="module", params=["ve_ncsnv2_cifar10"])
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
    ("ncsnv2_cifar10", "ve/ncsnv2/cifar10"),
])
def test_full_size_parameter_counts(config_name, reference):
  counts = json.loads((FIXTURES / "param_counts.json").read_text())["models"]
  config = get_config(config_name)
  assert config.model.name == counts[reference]["model_name"]
  shapes = init_shapes(models.get_model(config), config.data.image_size)  # abstract: nothing allocated
  assert param_count(shapes) == counts[reference]["parameters"]


# Compiling init + apply of the smoke network takes ~25 s on 2 cores (~5 s from the persistent
# cache); the fast tier checks the NCSNv2 forward pass against the fixture instead.
@pytest.mark.slow
@pytest.mark.parametrize("config_name", ["ncsnv2_cifar10"])
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
  assert config.model.name != "ddpm"
  np.testing.assert_array_equal(y_eval, y_train)  # NCSNv2 has no dropout


@pytest.mark.parametrize("name,image_size", [("ncsnv2_128", 128), ("ncsnv2_256", 256)])
def test_larger_ncsnv2_shapes(name, image_size):
  config = get_config("ncsnv2_cifar10")
  config.model.name = name
  config.model.nf = 8
  config.data.image_size = image_size
  model = models.get_model(config)
  x = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  labels = jax.ShapeDtypeStruct((1,), jnp.int32)
  variables = jax.eval_shape(lambda x, l: model.init({"params": jax.random.key(0)}, x, l, train=False),
                             x, labels)
  y = jax.eval_shape(lambda v, x, l: model.apply(v, x, l, train=False), variables, x, labels)
  assert y.shape == x.shape
  levels = len(ncsnv2.VARIANTS[name]["ch_mult"])
  assert {f"level{i}_refine" for i in range(levels)} <= set(variables["params"])


def test_ncsnv2_score_fns_index_the_decreasing_sigma_table():
  """VE discrete: labels round((T - t)(N - 1)) index sigmas = exp(linspace(log max, log min, N))."""
  config, _, state_dict, arrays = load_score_sde_fixture("ve_ncsnv2_cifar10")
  model = models.get_model(config)
  variables = models.from_score_sde_pytorch(state_dict, config)
  x = nhwc(arrays["input_x"])
  sde = sde_lib.sde_from_config(config)
  # Jitted: one compilation (~3 s, cached across runs) instead of ~20 s of op-by-op dispatch.
  score = jax.jit(lambda v, x, t: models.get_score_fn(sde, model, v, continuous=False)(x, t))(
      variables, x, jnp.asarray(arrays["input_t"]))  # t = [0.5, 0.9] -> labels [116, 23]
  assert_close(score, arrays["output"])

  sigmas = sde_lib.ncsn_sigmas(config.model.sigma_min, config.model.sigma_max, config.model.num_scales)
  np.testing.assert_allclose(sigmas, state_dict["sigmas"], rtol=1e-6)
  assert sigmas[0] > sigmas[-1]
  score_fn_sigma = jax.jit(lambda v, x, s: models.get_ncsn_score_fn_sigma(model, v, sigmas)(x, s))
  labels = arrays["input_labels"].astype(np.int64)
  assert_close(score_fn_sigma(variables, x, jnp.asarray(sigmas[labels], jnp.float32)), arrays["output"])
