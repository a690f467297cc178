"""Score networks (flax.linen) and their conversion to score functions.

`get_model(config)` selects by `config.model.name` from an explicit dict; each
architecture module exposes `build(config) -> nn.Module` and
`convert(state_dict, config) -> variables` (from score_sde_pytorch weights).
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from scorejax.models.score_fn import (get_model_fn, get_ncsn_score_fn_sigma, get_score_fn,
                                      labels_and_std)

# config.model.name -> module implementing it (imported on first use).
ARCHITECTURES: Mapping[str, str] = {
    "ncsnpp": "scorejax.models.ncsnpp",
    "ddpm": "scorejax.models.ddpm",
    "ncsnv2_64": "scorejax.models.ncsnv2",
    "ncsnv2_128": "scorejax.models.ncsnv2",
    "ncsnv2_256": "scorejax.models.ncsnv2",
    "mlp": "scorejax.models.mlp",
}


def _architecture(config) -> Any:
  name = config.model.name
  if name not in ARCHITECTURES:
    raise ValueError(f"config.model.name={name!r} is not one of {sorted(ARCHITECTURES)}")
  return importlib.import_module(ARCHITECTURES[name])


def get_model(config):
  """The flax module named by `config.model.name`, built from `config`."""
  return _architecture(config).build(config)


def image_size_multiple(config) -> tuple[int, str] | None:
  """(k, why) where `config.model.name`'s network takes only image sizes that are
  multiples of k; None where it takes any input (or no images, e.g. the MLP)."""
  rule = getattr(_architecture(config), "image_size_multiple", None)
  return None if rule is None else rule(config)


def from_score_sde_pytorch(state_dict: Mapping[str, Any], config) -> dict:
  """Variables for `get_model(config)` from a score_sde_pytorch state dict.

  `state_dict` maps torch keys to arrays (a leading 'module.' is accepted), e.g. a
  checkpoint's 'model' or 'ema' entry; see `scorejax.models.convert.load_state_dict`
  to read a `.pth` or `.npz` file.
  """
  sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
  return _architecture(config).convert(sd, config)


__all__ = ["ARCHITECTURES", "get_model", "from_score_sde_pytorch", "image_size_multiple",
           "get_score_fn", "get_model_fn", "get_ncsn_score_fn_sigma", "labels_and_std"]
