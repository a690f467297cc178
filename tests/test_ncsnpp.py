"""NCSN++ / DDPM++ port against score_sde_pytorch (commit cb1f359f) fixtures.

Fixtures live in ../../shared/fixtures/score_sde_pytorch (see its README): a
perturbed state dict, an NCHW input, the labels and the torch output of a shrunken
config. Missing fixtures fail the tests rather than skipping them.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fixture_utils import SCORE_SDE_FIXTURES, load_score_sde_fixture, nhwc
from scorejax import models
from scorejax.models import convert as convert_lib
from scorejax.models import layers, ncsnpp
from scorejax.models import up_or_down_sampling as updown

REPO = Path(__file__).resolve().parents[1]
FIXTURES = SCORE_SDE_FIXTURES
NCSNPP_FIXTURES = ["ve_cifar10_ncsnpp_continuous", "vp_cifar10_ddpmpp_continuous",
                   "ve_celebahq256_ncsnpp_continuous"]
# scorejax config -> the reference config whose full-size count param_counts.json gives.
FULL_CONFIGS = {
    "ve_cifar10": "ve/cifar10_ncsnpp_continuous",
    "ve_cifar10_deep": "ve/cifar10_ncsnpp_deep_continuous",
    "vp_cifar10": "vp/cifar10_ddpmpp_continuous",
    "vp_cifar10_deep": "vp/cifar10_ddpmpp_deep_continuous",
    "subvp_cifar10": "subvp/cifar10_ddpmpp_continuous",
    # Not in param_counts.json; the same network as vp_cifar10_deep.
    "subvp_cifar10_deep": "vp/cifar10_ddpmpp_deep_continuous",
}


def flat_shapes(tree) -> dict[str, tuple]:
  return {jax.tree_util.keystr(path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def abstract_init(model, image_size: int, channels: int = 3):
  x = jnp.zeros((1, image_size, image_size, channels))
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, jnp.ones((1,)),
                                           train=False))


def count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))


# --- Fixtures: numerical parity and complete conversion --------------------------------


@pytest.mark.parametrize("name", NCSNPP_FIXTURES)
def test_matches_score_sde_pytorch(name):
  config, meta, state_dict, arrays = load_score_sde_fixture(name)
  assert meta["reference_commit"].startswith("cb1f359f")
  model = models.get_model(config)
  assert isinstance(model, ncsnpp.NCSNpp)
  variables = models.from_score_sde_pytorch(state_dict, config)
  # Jitted: one compilation (~3 s, cached across runs) instead of ~20 s of op-by-op dispatch.
  out = jax.jit(lambda v, x, labels: model.apply(v, x, labels, train=False))(
      variables, nhwc(arrays["input_x"]), jnp.asarray(arrays["input_labels"]))
  out = np.asarray(out).transpose(0, 3, 1, 2)
  ref = arrays["output"]
  assert out.shape == ref.shape
  rel = np.linalg.norm(out - ref) / np.linalg.norm(ref)
  assert rel <= 1e-4, rel
  assert np.abs(out - ref).max() <= 1e-4, np.abs(out - ref).max()


@pytest.mark.parametrize("name", NCSNPP_FIXTURES)
def test_conversion_consumes_every_weight(name):
  config, meta, state_dict, _ = load_score_sde_fixture(name)
  model = models.get_model(config)
  variables = models.from_score_sde_pytorch(state_dict, config)
  expected = abstract_init(model, config.data.image_size, config.data.num_channels)
  assert set(variables) == set(expected) == {"params"}
  # Same tree and shapes as model.init: nothing missing, nothing extra.
  assert flat_shapes(variables) == flat_shapes(expected)
  # Every torch entry except the sigmas buffer became exactly one flax leaf.
  torch_keys = [k for k in state_dict if k != "sigmas"]
  assert len(jax.tree_util.tree_leaves(variables)) == len(torch_keys)
  assert count(variables) == meta["param_count"]["parameters"]
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables))


def test_conversion_accepts_module_prefix_and_rejects_strangers():
  config, _, state_dict, _ = load_score_sde_fixture("vp_cifar10_ddpmpp_continuous")
  prefixed = {f"module.{k}": v for k, v in state_dict.items()}
  a = models.from_score_sde_pytorch(prefixed, config)
  b = models.from_score_sde_pytorch(state_dict, config)
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  assert all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
  with pytest.raises((KeyError, ValueError)):
    models.from_score_sde_pytorch({**state_dict, "all_modules.3.extra": np.zeros(3)}, config)
  missing = dict(state_dict)
  missing.pop("all_modules.2.bias")  # conv_in (no Fourier module here)
  with pytest.raises(ValueError, match="missing"):
    models.from_score_sde_pytorch(missing, config)


def test_load_state_dict_npz_and_ema_mapping(tmp_path):
  _, _, state_dict, _ = load_score_sde_fixture("ve_cifar10_ncsnpp_continuous")
  path = tmp_path / "sd.npz"
  np.savez(path, **{f"module.{k}": v for k, v in state_dict.items()})
  loaded = convert_lib.load_state_dict(path)
  assert set(loaded) == set(state_dict)
  # score_sde's EMA keeps one shadow tensor per trainable parameter, in order; the
  # fixed Fourier W and the sigmas buffer are not among them.
  trainable = [k for k in state_dict if k not in ("sigmas", "all_modules.0.W")]
  shadow = [state_dict[k] + 1.0 for k in trainable]
  ema_sd = convert_lib._ema_to_state_dict({"shadow_params": shadow}, state_dict)
  np.testing.assert_array_equal(ema_sd["all_modules.0.W"], state_dict["all_modules.0.W"])
  np.testing.assert_array_equal(ema_sd["all_modules.3.weight"],
                                state_dict["all_modules.3.weight"] + 1.0)
  with pytest.raises(ValueError):
    convert_lib._ema_to_state_dict({"shadow_params": shadow[:-1]}, state_dict)


def test_layout_helpers():
  w = np.arange(2 * 3 * 5 * 5, dtype=np.float32).reshape(2, 3, 5, 5)
  assert convert_lib.conv_weight(w).shape == (5, 5, 3, 2)
  assert convert_lib.conv_weight(w)[1, 4, 2, 0] == w[0, 2, 1, 4]
  d = np.arange(6.0).reshape(2, 3)
  np.testing.assert_array_equal(convert_lib.dense_weight(d), d.T)


# --- Full-size configs: parameter counts and a CPU forward+backward --------------------


@pytest.mark.parametrize("name", [n if not n.endswith("_deep") else pytest.param(n, marks=pytest.mark.slow)
                                  for n in sorted(FULL_CONFIGS)])
def test_full_size_parameter_counts(name):
  counts = json.loads((FIXTURES / "param_counts.json").read_text())["models"]
  ref = counts[FULL_CONFIGS[name]]
  config = importlib.import_module(f"configs.{name}").get_config()
  model = models.get_model(config)
  params = abstract_init(model, config.data.image_size)["params"]
  assert count(params) == ref["parameters"]
  fixed = count(params.get("fourier_proj", {}))  # requires_grad=False in torch
  assert count(params) - fixed == ref["trainable_parameters"]


@pytest.mark.slow
def test_full_size_ve_cifar10_forward_backward_on_cpu():
  config = importlib.import_module("configs.ve_cifar10").get_config()
  model = models.get_model(config)
  key = jax.random.PRNGKey(0)
  x = jax.random.uniform(key, (2, 32, 32, 3))
  sigmas = jnp.array([0.05, 20.0])
  variables = jax.jit(lambda k: model.init(k, x, sigmas, train=False))(key)

  def loss(params, x, sigmas, k):
    out = model.apply({"params": params}, x, sigmas, train=True, rngs={"dropout": k})
    return jnp.mean(out ** 2)

  value, grads = jax.jit(jax.value_and_grad(loss))(variables["params"], x, sigmas, key)
  value = jax.block_until_ready(value)
  assert np.isfinite(float(value))
  gnorm = jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree_util.tree_leaves(grads)))
  assert np.isfinite(float(gnorm)) and float(gnorm) > 0


# --- Smoke configs ---------------------------------------------------------------------


# Compiling init + apply of a smoke U-Net takes ~20-40 s on 2 cores (~5 s from the persistent
# cache): the fast tier checks NCSN++ and DDPM++ against the fixtures instead
# (test_matches_score_sde_pytorch).
@pytest.mark.slow
@pytest.mark.parametrize("name", ["ve_cifar10", "vp_cifar10", "subvp_cifar10",
                                  "ve_cifar10_deep", "vp_cifar10_deep", "subvp_cifar10_deep"])
def test_smoke_config_inits_and_applies_quickly(name):
  start = time.perf_counter()
  config = importlib.import_module(f"configs.{name}").get_config("smoke")
  assert config.data.image_size == 16 and config.model.nf == 32
  model = models.get_model(config)
  key = jax.random.PRNGKey(0)
  x = jax.random.uniform(key, (2, 16, 16, 3))
  labels = jnp.array([0.5, 10.0]) if config.training.sde == "vesde" else jnp.array([10.0, 900.0])
  # Jitted (as training runs it): one compilation, kept by the persistent cache.
  variables = jax.jit(lambda k: model.init(k, x, labels, train=False))(key)
  apply = jax.jit(lambda v, train, k: model.apply(v, x, labels, train=train, rngs={"dropout": k}),
                  static_argnums=1)
  out = apply(variables, False, key)
  assert out.shape == x.shape and bool(jnp.all(jnp.isfinite(out)))
  out_train = apply(variables, True, key)
  assert out_train.shape == x.shape
  # Dropout (0.1 in every NCSN++ config) is active only in training mode.
  assert float(config.model.dropout) > 0
  assert float(jnp.max(jnp.abs(out_train - out))) > 0
  assert time.perf_counter() - start < 120


def test_config_loads_by_file_path(monkeypatch):
  from absl import flags  # pylint: disable=import-outside-toplevel
  from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
  monkeypatch.chdir(REPO)
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=flag_values)
  flag_values(["prog", "--config=configs/ve_cifar10_deep.py:smoke"])
  config = flag_values.config
  assert config.model.name == "ncsnpp" and config.model.num_res_blocks == 1
  assert config.training.sde == "vesde" and config.data.image_size == 16


def test_unknown_names_fail_listing_valid_ones():
  with pytest.raises(ValueError, match="output_skip"):
    ncsnpp.NCSNpp(progressive="bogus", image_size=16, nf=16, ch_mult=(1,)).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)), jnp.ones((1,)))
  with pytest.raises(ValueError, match="swish"):
    layers.get_act("gelu")


# --- Layers against closed forms -------------------------------------------------------


def test_timestep_embedding_closed_form():
  t = jnp.array([0.0, 3.0, 999.0])
  emb = np.asarray(layers.get_timestep_embedding(t, 8))
  freqs = np.exp(-np.log(10000.0) * np.arange(4) / 3)
  arg = np.asarray(t)[:, None] * freqs[None]
  np.testing.assert_allclose(emb, np.concatenate([np.sin(arg), np.cos(arg)], 1),
                             rtol=1e-5, atol=1e-4)
  assert layers.get_timestep_embedding(t, 7).shape == (3, 7)


def test_fir_resampling_closed_forms():
  x = jax.random.normal(jax.random.PRNGKey(1), (1, 8, 8, 2))
  ones = jnp.ones((1, 8, 8, 2))
  w = jax.random.normal(jax.random.PRNGKey(2), (3, 3, 2, 4))
  conv = lambda h: jax.lax.conv_general_dilated(h, w, (1, 1), "SAME",
                                                dimension_numbers=("NHWC", "HWIO", "NHWC"))

  @jax.jit  # every resampling below in one compilation instead of op-by-op dispatch
  def resampled():
    return dict(
        up_ones=updown.upsample_2d(ones, (1, 3, 3, 1)), down_ones=updown.downsample_2d(ones, (1, 3, 3, 1)),
        up_box=updown.upsample_2d(x, (1, 1)), up_naive=updown.naive_upsample_2d(x),
        down_box=updown.downsample_2d(x, (1, 1)), down_naive=updown.naive_downsample_2d(x),
        up_fused=updown.upsample_conv_2d(x, w, (1, 3, 3, 1)), up_ref=conv(updown.upsample_2d(x, (1, 3, 3, 1))),
        down_fused=updown.conv_downsample_2d(x, w, (1, 3, 3, 1)),
        down_ref=updown.downsample_2d(conv(x), (1, 3, 3, 1)))

  r = resampled()
  # The normalized [1, 3, 3, 1] filter keeps constants away from the border.
  np.testing.assert_allclose(r["up_ones"][0, 2:-2, 2:-2], 1.0, rtol=1e-6)
  np.testing.assert_allclose(r["down_ones"][0, 1:-1, 1:-1], 1.0, rtol=1e-6)
  # With the box kernel [1, 1], FIR resampling is nearest / average pooling.
  np.testing.assert_allclose(r["up_box"], r["up_naive"], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(r["down_box"], r["down_naive"], rtol=1e-6, atol=1e-6)
  # The fused conv variants equal resample-then-conv up to the border.
  up_fused, up_ref = r["up_fused"], r["up_ref"]
  assert up_fused.shape == (1, 16, 16, 4)
  np.testing.assert_allclose(up_fused[0, 3:-3, 3:-3], up_ref[0, 3:-3, 3:-3], rtol=1e-4,
                             atol=1e-4)
  down_fused, down_ref = r["down_fused"], r["down_ref"]
  assert down_fused.shape == (1, 4, 4, 4)
  np.testing.assert_allclose(down_fused[0, 1:-1, 1:-1], down_ref[0, 1:-1, 1:-1], rtol=1e-4,
                             atol=1e-4)


@pytest.mark.parametrize("up,down", [(2, 1), (1, 2), (1, 1)])
def test_separable_fir_equals_generic_upfirdn2d(up, down):
  x = jax.random.normal(jax.random.PRNGKey(3), (2, 8, 8, 3))
  k = np.array([1.0, 3.0, 3.0, 1.0])
  pad = (2, 1) if up == 2 else (1, 1)
  separable = updown._fir(x, k, 4.0 if up == 2 else 1.0, up=up, down=down, pad=pad)
  generic = updown.upfirdn2d(x, updown.setup_kernel(k) * (4.0 if up == 2 else 1.0), up=up,
                             down=down, pad=pad)
  assert separable.shape == generic.shape
  np.testing.assert_allclose(separable, generic, rtol=1e-5, atol=1e-5)
  # A 2-D kernel argument takes the generic path.
  np.testing.assert_allclose(updown._fir(x, np.outer(k, k), 4.0 if up == 2 else 1.0, up=up,
                                         down=down, pad=pad), generic, rtol=1e-6, atol=1e-6)
