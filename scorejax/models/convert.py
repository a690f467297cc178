"""Reading score_sde_pytorch checkpoints, and torch -> flax layout helpers.

`load_state_dict(path)` returns `{torch key: numpy array}`; the architecture
modules' `convert(state_dict, config)` (reached through
`scorejax.models.from_score_sde_pytorch`) turn that into flax variables.

Layouts: torch convolutions are OIHW and flax's HWIO (`conv_weight`); torch
Linear weights are [out, in] and flax Dense kernels [in, out] (`dense_weight`).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np


def conv_weight(w: Any) -> np.ndarray:
  """Torch conv weight (O, I, kh, kw) -> flax kernel (kh, kw, I, O)."""
  w = np.asarray(w)
  if w.ndim != 4:
    raise ValueError(f"conv weight must be 4-D (OIHW), got shape {w.shape}")
  return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def dense_weight(w: Any) -> np.ndarray:
  """Torch Linear weight (out, in) -> flax Dense kernel (in, out)."""
  w = np.asarray(w)
  if w.ndim != 2:
    raise ValueError(f"linear weight must be 2-D ([out, in]), got shape {w.shape}")
  return np.ascontiguousarray(w.T)


def strip_module_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """Drops the 'module.' prefix that torch.nn.DataParallel adds to every key."""
  return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def _to_numpy(v: Any) -> np.ndarray:
  if hasattr(v, "detach"):  # torch.Tensor, without importing torch
    v = v.detach().cpu().numpy()
  return np.asarray(v)


def _ema_to_state_dict(ema: Mapping[str, Any], model_sd: Mapping[str, Any]) -> dict[str, Any]:
  """Maps score_sde's ExponentialMovingAverage state onto parameter names.

  `ExponentialMovingAverage.state_dict()` is {'decay', 'num_updates',
  'shadow_params': [tensor, ...]}, with one shadow tensor per *trainable*
  parameter in `model.parameters()` order. That is the order of the model's state
  dict restricted to parameters, minus the buffers (`sigmas`) and minus the
  non-trainable Gaussian-Fourier `W` (a 1-D entry named '*.W'; NIN's `W` is 2-D
  and trainable). The fixed entries keep their values from the model state dict.
  Counts and shapes are checked; any mismatch raises.
  """
  shadow = list(ema["shadow_params"])
  buffers = {"sigmas"}
  param_keys = [k for k in model_sd if k.split(".")[-1] not in buffers]
  fixed = {k for k in param_keys if k.endswith(".W") and np.ndim(model_sd[k]) == 1}
  if len(shadow) == len(param_keys) - len(fixed):
    param_keys = [k for k in param_keys if k not in fixed]
  elif len(shadow) != len(param_keys):
    raise ValueError(f"EMA has {len(shadow)} shadow params but the model state dict has "
                     f"{len(param_keys)} parameters ({len(fixed)} of them fixed)")
  out = dict(model_sd)
  for k, v in zip(param_keys, shadow):
    if tuple(np.shape(model_sd[k])) != tuple(np.shape(v)):
      raise ValueError(f"EMA shadow param for {k} has shape {np.shape(v)}, "
                       f"model has {np.shape(model_sd[k])}")
    out[k] = v
  return out


def load_state_dict(path: str | os.PathLike, which: str = "ema") -> dict[str, np.ndarray]:
  """Reads a score_sde_pytorch state dict as {torch key: numpy array}, 'module.' stripped.

  * `.npz`: the arrays of a state dict under their torch keys (no torch needed).
  * `.pth`/`.pt`: a score_sde_pytorch checkpoint {'model', 'ema', 'optimizer',
    'step'} (torch is imported lazily). `which='model'` returns checkpoint['model'];
    `which='ema'` returns the EMA weights, which score_sde stores as
    {'shadow_params': [...], ...}: they are mapped in order onto the model's
    parameter names (see `_ema_to_state_dict`); if 'ema' already is a plain state
    dict it is used as is. A bare state dict file (no 'model' key) is returned as is.
  """
  path = os.fspath(path)
  if which not in ("ema", "model"):
    raise ValueError(f"which={which!r} is not one of ['ema', 'model']")
  if path.endswith(".npz"):
    with np.load(path, allow_pickle=False) as f:
      return strip_module_prefix({k: f[k] for k in f.files})
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"reading {path!r} needs PyTorch (pip install torch, or scorejax[torch]); "
        "alternatively save the state dict as .npz: "
        "np.savez(out, **{k: v.numpy() for k, v in state_dict.items()})") from e
  ckpt = torch.load(path, map_location="cpu", weights_only=False)
  if not (isinstance(ckpt, Mapping) and "model" in ckpt):
    sd = ckpt
  elif which == "model":
    sd = ckpt["model"]
  else:
    ema = ckpt.get("ema")
    if ema is None:
      raise KeyError(f"{path!r} has no 'ema' entry; use which='model'")
    if isinstance(ema, Mapping) and "shadow_params" in ema:
      sd = _ema_to_state_dict(ema, strip_module_prefix(ckpt["model"]))
    else:
      sd = ema
  return strip_module_prefix({k: _to_numpy(v) for k, v in sd.items()})
