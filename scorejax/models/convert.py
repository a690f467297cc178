"""Reading score_sde_pytorch checkpoints, and torch -> flax layout helpers.

`load_state_dict(path)` returns `{torch key: numpy array}`; the architecture
modules' `convert(state_dict, config)` (reached through
`scorejax.models.from_score_sde_pytorch`) turn that into flax variables, each
through `convert_state_dict` with its own key renaming: the state dict is first
checked against the model's parameters, so a missing, unexpected or wrong-shaped
key is an error naming the key, before anything is converted.

Layouts: torch convolutions are OIHW and flax's HWIO (`conv_weight`); torch
Linear weights are [out, in] and flax Dense kernels [in, out] (`dense_weight`).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# A torch key -> (flax module path, torch leaf name), or None where the key has no
# place in the model; and its inverse, (flax module path, torch leaf name) -> torch key.
ToFlax = Callable[[str], "tuple[tuple[str, ...], str] | None"]
ToTorch = Callable[[Sequence[str], str], "str | None"]
# Derived buffers of score_sde's networks (the sigma table), recomputed from the config.
BUFFERS = ("sigmas",)


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


def torch_leaf(name: str, value: Any) -> tuple[str, np.ndarray]:
  """(flax leaf name, float32 array) of one torch parameter named `name`.

  Conv weights OIHW -> HWIO 'kernel', Linear weights [out, in] -> [in, out] 'kernel',
  norm weights -> 'scale'; everything else ('bias', NIN's `W`/`b`, InstanceNorm++'s
  `alpha`/`gamma`/`beta`, the Fourier projection's `W`) keeps its name and layout.
  """
  value = np.asarray(value, dtype=np.float32)
  if name == "weight":
    if value.ndim == 4:
      return "kernel", conv_weight(value)
    if value.ndim == 2:
      return "kernel", dense_weight(value)
    return "scale", value
  return name, value


def torch_leaf_and_shape(flax_leaf: str, shape: Sequence[int]) -> tuple[str, tuple[int, ...]]:
  """The inverse of `torch_leaf` on names and shapes: (torch leaf name, torch shape)."""
  shape = tuple(int(n) for n in shape)
  if flax_leaf == "kernel" and len(shape) == 4:  # HWIO -> OIHW
    return "weight", (shape[3], shape[2], shape[0], shape[1])
  if flax_leaf == "kernel" and len(shape) == 2:  # [in, out] -> [out, in]
    return "weight", (shape[1], shape[0])
  if flax_leaf == "scale":
    return "weight", shape
  return flax_leaf, shape


def param_shapes(model, config) -> dict[str, tuple[int, ...]]:
  """{'module/.../leaf': shape} of `model.init` on one image of `config.data`'s size.

  Computed abstractly (`jax.eval_shape`: nothing is allocated or computed).
  """
  size, channels = int(config.data.image_size), int(config.data.num_channels)
  variables = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, size, size, channels)), jnp.ones((1,)), train=False))
  return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"])}


def _listing(items: Sequence[str], limit: int = 10) -> str:
  more = f" and {len(items) - limit} more" if len(items) > limit else ""
  return ", ".join(items[:limit]) + more


def check_state_dict(state_dict: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]], *,
                     architecture: str) -> None:
  """Raises ValueError naming every missing, unexpected and wrong-shaped torch key.

  `expected` maps the torch keys of the model to their torch shapes; the derived
  `BUFFERS` are neither required nor refused.
  """
  given = {k: tuple(np.shape(v)) for k, v in state_dict.items() if k not in BUFFERS}
  missing = [k for k in expected if k not in given]
  unexpected = [k for k in given if k not in expected]
  wrong = [f"{k} {given[k]} (expected {expected[k]})"
           for k in given if k in expected and given[k] != expected[k]]
  if not (missing or unexpected or wrong):
    return
  parts = []
  if missing:
    parts.append(f"missing keys: {_listing(missing)}")
  if unexpected:
    parts.append(f"unexpected keys: {_listing(unexpected)}")
  if wrong:
    parts.append(f"wrong shapes: {_listing(wrong)}")
  raise ValueError(
      f"the state dict does not match the {architecture} this config builds; "
      + "; ".join(parts) + ". Convert a checkpoint of this architecture, with the config it was "
      "trained with (config.model.name, nf, ch_mult, num_res_blocks, attn_resolutions, ... and "
      "config.data.image_size, num_channels)")


def convert_state_dict(state_dict: Mapping[str, Any], model, config, *, to_flax: ToFlax,
                       to_torch: ToTorch, architecture: str) -> dict:
  """Flax variables {'params': ...} for `model` from a score_sde_pytorch state dict.

  `to_flax` and `to_torch` are the architecture's key renaming and its inverse.
  The state dict's keys and shapes are checked first against those of `model.init`
  (`check_state_dict`); then every key is renamed and its array laid out for flax
  (`torch_leaf`). The derived `BUFFERS` are skipped.
  """
  expected_flax = param_shapes(model, config)
  expected: dict[str, tuple[int, ...]] = {}
  for path, shape in expected_flax.items():
    *modules, leaf = path.split("/")
    torch_name, torch_shape = torch_leaf_and_shape(leaf, shape)
    key = to_torch(modules, torch_name) or f"<flax parameter {path} has no torch key>"
    expected[key] = torch_shape
  check_state_dict(state_dict, expected, architecture=architecture)

  params: dict = {}
  for key, value in state_dict.items():
    if key in BUFFERS:
      continue
    mapped = to_flax(key)
    if mapped is None:  # the key was checked: to_flax and to_torch disagree
      raise ValueError(f"torch key {key!r} has no flax counterpart in the {architecture}")
    modules, name = mapped
    leaf, array = torch_leaf(name, value)
    node = params
    for m in modules:
      node = node.setdefault(m, {})
    if leaf in node:
      raise ValueError(f"torch key {key!r} maps onto an already filled flax parameter "
                       f"{'/'.join((*modules, leaf))}")
    node[leaf] = jnp.asarray(array)
  return {"params": params}


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
