"""Shared readers for the reference fixtures in ../shared/fixtures (beside the repo root)."""

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
