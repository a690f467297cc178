"""Mixed precision (`config.model.dtype`, scorejax.models.precision): bfloat16 activations,
float32 parameters, optimizer state and loss.

The fast tests trace (no compilation): every convolution and matmul of the network's
body runs in bfloat16, the time embedding in float32, the output is float32, the
parameters are float32 and identical to the float32 model's. The slow ones compile a
smoke-size training step in both dtypes from one state and compare: a bfloat16 step
must stay within the stated tolerances of the float32 step.
"""

import collections
import importlib

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from scorejax import models, training
from scorejax.models import precision
from scorejax.training import setup

# (config module, architecture): NCSN++ (VE), DDPM++ (VP) and DDPM, at smoke size.
NETWORKS = ["ve_cifar10", "vp_cifar10", "ddpm_cifar10"]

# A bfloat16 step against the float32 step from the same state: ||bf16 - f32|| / ||f32||
# of the loss, the gradient and the optimizer's update. bfloat16 keeps 8 significant bits
# (relative rounding 2^-9 = 0.002 per operation). The update is Adam's per-element
# normalized gradient, which weighs the (noisier) small gradient components as much as
# the large ones, so its tolerance is the widest. Measured on a 2-core CPU (loss, gradient,
# update): NCSN++ 1.9e-5, 4.6e-3, 9.0e-3; DDPM++ 7.8e-4, 1.9e-2, 6.4e-3; DDPM 1.2e-4,
# 6.5e-3, 0.11 (docs/training.md, "Mixed precision").
LOSS_RTOL = 1e-2
GRAD_RTOL = 5e-2
UPDATE_RTOL = 0.25


def _config(name: str, dtype: str):
  config = importlib.import_module(f"configs.{name}").get_config("smoke")
  config.model.dtype = dtype
  config.training.batch_size = 4
  # A state whose zero-initialized output layers have moved, so that the network's output
  # (not only the noise target) enters the loss: no warm-up and a large step size.
  config.optim.warmup = 0
  config.optim.lr = 2e-3
  return config


def _rel(a, b) -> float:
  """||a - b|| / ||b|| over all leaves of two pytrees."""
  num = sum(float(jnp.sum((x - y) ** 2)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  den = sum(float(jnp.sum(y ** 2)) for y in jax.tree.leaves(b))
  return float(np.sqrt(num / den))


def _matmul_dtypes(fn, *args) -> collections.Counter:
  """(primitive, lhs dtype, rhs dtype) -> count over the convolutions and dot products that
  tracing `fn(*args)` records, nested jaxprs included."""
  counts = collections.Counter()

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name in ("conv_general_dilated", "dot_general"):
        counts[(eqn.primitive.name, str(eqn.invars[0].aval.dtype),
                str(eqn.invars[1].aval.dtype))] += 1
      for value in eqn.params.values():
        if isinstance(value, jax.extend.core.ClosedJaxpr):
          walk(value.jaxpr)
        elif isinstance(value, jax.extend.core.Jaxpr):
          walk(value)
  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return counts


@pytest.mark.parametrize("name", NETWORKS)
def test_bfloat16_network_computes_its_body_in_bfloat16(name):
  c32 = training.build_components(_config(name, "float32"))
  c16 = training.build_components(_config(name, "bfloat16"))
  params = jax.eval_shape(lambda k: training.init_state(c16, k), jax.random.key(0))
  params32 = jax.eval_shape(lambda k: training.init_state(c32, k), jax.random.key(0))
  assert jax.tree.map(lambda a: (a.shape, a.dtype), params.params) == jax.tree.map(
      lambda a: (a.shape, a.dtype), params32.params)  # the same float32 parameters
  assert {a.dtype for a in jax.tree.leaves(params.params)} == {jnp.dtype(jnp.float32)}

  x = jnp.zeros((2,) + c16.data_shape)
  t = jnp.full((2,), 0.5)
  labels, _ = models.labels_and_std(c16.sde, t, c16.continuous)
  state = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), params)
  apply = lambda p: c16.model.apply({"params": p, **state.model_state}, x, labels,  # noqa: E731
                                    train=False)
  counts = _matmul_dtypes(apply, state.params)
  convs = {k: n for k, n in counts.items() if k[0] == "conv_general_dilated"}
  assert convs and all(k[1:] == ("bfloat16", "bfloat16") for k in convs), counts
  dots = {k[1:]: n for k, n in counts.items() if k[0] == "dot_general"}
  # The two dense layers of the time embedding stay float32; every other matmul is bfloat16.
  assert dots.get(("float32", "float32"), 0) == 2 and dots.get(("bfloat16", "bfloat16"), 0) > 0, dots
  assert jax.eval_shape(apply, state.params).dtype == jnp.float32


def test_unknown_or_unsupported_dtype_names_the_field():
  config = _config("ve_cifar10", "float16")
  with pytest.raises(ValueError, match=r"config.model.dtype='float16' is not one of"):
    precision.compute_dtype(config)
  config = importlib.import_module("configs.ncsnv2_cifar10").get_config("smoke")
  config.model.dtype = "bfloat16"
  with pytest.raises(ValueError, match=r"config.model.dtype='bfloat16'.*ncsnv2"):
    precision.compute_dtype(config)
  del config.model["dtype"]
  assert precision.compute_dtype(config) == jnp.float32  # configs written before the option


# NCSN++ and DDPM (their own layers); DDPM++ is NCSN++'s code with DDPM blocks (its
# numbers, measured with this test, are in docs/training.md): ~2 min each on 2 cores.
@pytest.mark.slow  # compiles a smoke U-Net's loss gradient twice
@pytest.mark.parametrize("name", ["ve_cifar10", "ddpm_cifar10"])
def test_bfloat16_step_stays_within_tolerance_of_float32(name):
  c32 = training.build_components(_config(name, "float32"))
  c16 = training.build_components(_config(name, "bfloat16"))
  state = jax.jit(lambda k: training.init_state(c32, k))(jax.random.key(0))
  shape = (4,) + c32.data_shape
  key = jax.random.key(1)

  def value_and_grad(c):
    loss = lambda p, x: c.loss_fn(p, state.model_state, key, c.scaler(x))[0]  # noqa: E731
    return jax.jit(jax.value_and_grad(loss))
  grad32, grad16 = value_and_grad(c32), value_and_grad(c16)
  update = jax.jit(c32.optimizer.update)  # the step's optimizer (clipping, Adam)
  params, opt_state = state.params, state.opt_state
  for i in range(8):  # move the zero-initialized output layers; give Adam a history
    _, g = grad32(params, jax.random.uniform(jax.random.key(100 + i), shape))
    u, opt_state = update(g, opt_state, params)
    params = jax.tree.map(jnp.add, params, u)

  x = jax.random.uniform(jax.random.key(2), shape)
  (loss32, g32), (loss16, g16) = grad32(params, x), grad16(params, x)
  assert loss16.dtype == jnp.float32
  assert {a.dtype for a in jax.tree.leaves(g16)} == {jnp.dtype(jnp.float32)}
  assert abs(float(loss16) / float(loss32) - 1) < LOSS_RTOL, (float(loss16), float(loss32))
  assert _rel(g16, g32) < GRAD_RTOL, _rel(g16, g32)
  u32, u16 = update(g32, opt_state, params)[0], update(g16, opt_state, params)[0]
  assert _rel(u16, u32) < UPDATE_RTOL, _rel(u16, u32)

  # The bfloat16 run's step keeps parameters, optimizer state and EMA in float32.
  new = jax.eval_shape(setup.scaled_train_step(c16, 0.999), state, x, key)[0]
  assert {a.dtype for a in jax.tree.leaves((new.params, new.opt_state, new.ema_params))
          if jnp.issubdtype(a.dtype, jnp.floating)} == {jnp.dtype(jnp.float32)}
