"""Shared readers for the reference fixtures in ../shared/fixtures (beside the repo root),
and the comparisons the model tests make against them."""

import importlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

FIXTURES_ROOT = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
SCORE_SDE_FIXTURES = FIXTURES_ROOT / "score_sde_pytorch"
NON_WEIGHTS = ("input_x", "input_labels", "input_t", "output")


def load_score_sde_fixture(name: str):
  """(config, metadata, torch state dict, all arrays) of one score_sde_pytorch fixture.

  Fails (never skips) when the fixture is missing.
  """
  meta_path, npz_path = SCORE_SDE_FIXTURES / f"{name}.json", SCORE_SDE_FIXTURES / f"{name}.npz"
  if not (meta_path.exists() and npz_path.exists()):
    pytest.fail(f"missing fixture {name} under {SCORE_SDE_FIXTURES}")
  meta = json.loads(meta_path.read_text())
  arrays = dict(np.load(npz_path))
  state_dict = {k: v for k, v in arrays.items() if k not in NON_WEIGHTS}
  return ml_collections.ConfigDict(meta["config"]), meta, state_dict, arrays


def nhwc(x_nchw: np.ndarray) -> jax.Array:
  return jnp.asarray(x_nchw.transpose(0, 2, 3, 1))


def assert_close(y_nhwc: jax.Array, expected_nchw: np.ndarray, tol: float = 1e-4) -> None:
  """An NHWC output equals a torch NCHW one: relative L2 error and max abs error <= tol."""
  y = np.asarray(y_nhwc, dtype=np.float64).transpose(0, 3, 1, 2)
  expected = expected_nchw.astype(np.float64)
  assert y.shape == expected.shape
  rel = np.linalg.norm(y - expected) / np.linalg.norm(expected)
  err = np.abs(y - expected).max()
  assert rel <= tol and err <= tol, f"relative L2 {rel:.2e}, max abs {err:.2e}"


def get_config(name: str, arg: str = "") -> ml_collections.ConfigDict:
  """`configs/<name>.py`'s config (imported here: `configs` is not an installed package)."""
  return importlib.import_module(f"configs.{name}").get_config(arg)


def param_count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def init_shapes(model, image_size: int, channels: int = 3):
  """The abstract variables of `model` (integer labels): nothing is allocated."""
  x = jnp.zeros((1, image_size, image_size, channels))
  labels = jnp.zeros((1,), jnp.int32)
  return jax.eval_shape(lambda: model.init({"params": jax.random.key(0)}, x, labels, train=False))
