"""The FID Inception network (pytorch-fid 0.3.0) as pure JAX functions over a params pytree.

This is the network behind the standard FID numbers: the TF "2015-12-05" Inception v3
graph as ported to torch by pytorch-fid (Seitzer, https://github.com/mseitzer/pytorch-fid,
`InceptionV3(output_blocks=[3], resize_input=True, normalize_input=True,
use_fid_inception=True)`), i.e. torchvision's Inception3 (Szegedy et al. 2016,
"Rethinking the Inception Architecture", Fig. 5-7) with a 1008-way classifier and the
FID-specific blocks:

* Mixed_5b-d (A), Mixed_6b-e (C) and Mixed_7b (E_1) average-pool their pool branch
  with `count_include_pad=False` (padding cells are not counted in the mean);
* Mixed_7c (E_2) max-pools its pool branch (a bug of the TF graph, kept for FID);
* Mixed_6a / Mixed_7a pool with the usual 3x3 stride-2 max pool.

Input handling follows pytorch-fid exactly: uint8 -> [0, 1], bilinear resize to
299x299 with `align_corners=False` and no antialiasing (`F.interpolate`), then
`2x - 1`. BatchNorm runs in inference mode with eps = 1e-3.

Usage:
    params = load_params("pt_inception-2015-12-05-6726825d.pth")  # or .npz / dict
    pool3, logits = features(params, images_uint8_nhwc)           # (B, 2048), (B, 1008)

`pool3` is the FID/KID feature; `logits` (= pool3 @ fc + b) feed the Inception Score.
The params pytree is `{block: {branch: {"kernel" HWIO, "scale", "bias"}}, "fc": ...}`,
where `scale`/`bias` are the folded inference BatchNorm, y = conv(x) * scale + bias.
Everything runs in NHWC.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Params = dict[str, Any]

WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               + WEIGHTS_FILENAME)
WEIGHTS_ENV = "SCOREJAX_INCEPTION_WEIGHTS"
BN_EPS = 1e-3  # torchvision BasicConv2d's BatchNorm eps (the TF graph's)
INPUT_SIZE = 299
NUM_CLASSES = 1008  # 1000 ImageNet classes + 8 unused ones of the TF graph
POOL3_DIM = 2048

_HOW_TO_GET_WEIGHTS = (
    f"The FID Inception weights are pytorch-fid's release asset {WEIGHTS_FILENAME}; "
    f"they cannot be downloaded from this environment. On a machine with internet access "
    f"fetch {WEIGHTS_URL} (e.g. `wget {WEIGHTS_URL}`; pytorch-fid/torch hub also caches it "
    f"under ~/.cache/torch/hub/checkpoints/), copy it here and pass its path to "
    f"`load_params(path)` or set ${WEIGHTS_ENV}. Without torch installed, convert it once "
    f"where torch is available: python -c \"import torch, numpy as np; "
    f"sd = torch.load('{WEIGHTS_FILENAME}', map_location='cpu'); "
    f"np.savez('pt_inception.npz', **{{k: v.numpy() for k, v in sd.items()}})\" "
    f"and pass the .npz instead.")


# ----------------------------------------------------------------------------------------
# Architecture: (name, out channels, kernel (kh, kw), stride, padding (ph, pw)) per conv.
# Names are torchvision's, so the torch state dict maps onto them key for key.

_STEM = (
    ("Conv2d_1a_3x3", (3, 3), 2, (0, 0)),
    ("Conv2d_2a_3x3", (3, 3), 1, (0, 0)),
    ("Conv2d_2b_3x3", (3, 3), 1, (1, 1)),
    # max pool 3x3 / 2 -> block 0
    ("Conv2d_3b_1x1", (1, 1), 1, (0, 0)),
    ("Conv2d_4a_3x3", (3, 3), 1, (0, 0)),
    # max pool 3x3 / 2 -> block 1
)

# Mixed block name -> kind. A: InceptionA, B: InceptionB (grid reduction), C: InceptionC
# (factorized 7x7), D: InceptionD (grid reduction), E1/E2: InceptionE (expanded filter bank).
_MIXED = (("Mixed_5b", "A"), ("Mixed_5c", "A"), ("Mixed_5d", "A"), ("Mixed_6a", "B"),
          ("Mixed_6b", "C"), ("Mixed_6c", "C"), ("Mixed_6d", "C"), ("Mixed_6e", "C"),
          ("Mixed_7a", "D"), ("Mixed_7b", "E1"), ("Mixed_7c", "E2"))

# Branch convolutions of each kind: (branch conv name, kernel, stride, padding).
_BRANCHES = {
    "A": (("branch1x1", (1, 1), 1, (0, 0)),
          ("branch5x5_1", (1, 1), 1, (0, 0)), ("branch5x5_2", (5, 5), 1, (2, 2)),
          ("branch3x3dbl_1", (1, 1), 1, (0, 0)), ("branch3x3dbl_2", (3, 3), 1, (1, 1)),
          ("branch3x3dbl_3", (3, 3), 1, (1, 1)),
          ("branch_pool", (1, 1), 1, (0, 0))),
    "B": (("branch3x3", (3, 3), 2, (0, 0)),
          ("branch3x3dbl_1", (1, 1), 1, (0, 0)), ("branch3x3dbl_2", (3, 3), 1, (1, 1)),
          ("branch3x3dbl_3", (3, 3), 2, (0, 0))),
    "C": (("branch1x1", (1, 1), 1, (0, 0)),
          ("branch7x7_1", (1, 1), 1, (0, 0)), ("branch7x7_2", (1, 7), 1, (0, 3)),
          ("branch7x7_3", (7, 1), 1, (3, 0)),
          ("branch7x7dbl_1", (1, 1), 1, (0, 0)), ("branch7x7dbl_2", (7, 1), 1, (3, 0)),
          ("branch7x7dbl_3", (1, 7), 1, (0, 3)), ("branch7x7dbl_4", (7, 1), 1, (3, 0)),
          ("branch7x7dbl_5", (1, 7), 1, (0, 3)),
          ("branch_pool", (1, 1), 1, (0, 0))),
    "D": (("branch3x3_1", (1, 1), 1, (0, 0)), ("branch3x3_2", (3, 3), 2, (0, 0)),
          ("branch7x7x3_1", (1, 1), 1, (0, 0)), ("branch7x7x3_2", (1, 7), 1, (0, 3)),
          ("branch7x7x3_3", (7, 1), 1, (3, 0)), ("branch7x7x3_4", (3, 3), 2, (0, 0))),
    "E": (("branch1x1", (1, 1), 1, (0, 0)),
          ("branch3x3_1", (1, 1), 1, (0, 0)), ("branch3x3_2a", (1, 3), 1, (0, 1)),
          ("branch3x3_2b", (3, 1), 1, (1, 0)),
          ("branch3x3dbl_1", (1, 1), 1, (0, 0)), ("branch3x3dbl_2", (3, 3), 1, (1, 1)),
          ("branch3x3dbl_3a", (1, 3), 1, (0, 1)), ("branch3x3dbl_3b", (3, 1), 1, (1, 0)),
          ("branch_pool", (1, 1), 1, (0, 0))),
}
_BRANCHES["E1"] = _BRANCHES["E2"] = _BRANCHES["E"]


def _conv_specs():
  """{(block or None, conv name): (kernel, stride, padding)} for every BasicConv2d."""
  specs = {(None, name): (k, s, p) for name, k, s, p in _STEM}
  for block, kind in _MIXED:
    for name, k, s, p in _BRANCHES[kind]:
      specs[(block, name)] = (k, s, p)
  return specs


_CONV_SPECS = _conv_specs()


def torch_keys() -> list[str]:
  """The torch state_dict keys the port reads (num_batches_tracked is not needed)."""
  keys = []
  for block, name in _CONV_SPECS:
    prefix = name if block is None else f"{block}.{name}"
    keys.append(f"{prefix}.conv.weight")
    keys += [f"{prefix}.bn.{leaf}" for leaf in ("weight", "bias", "running_mean", "running_var")]
  return keys + ["fc.weight", "fc.bias"]


# ----------------------------------------------------------------------------------------
# Weights.


def convert_state_dict(state_dict: Mapping[str, Any]) -> Params:
  """Torch state dict of the FID Inception -> params pytree (numpy float32).

  Conv weights OIHW -> HWIO; BatchNorm (inference, eps 1e-3) folded into a per-channel
  `scale = gamma / sqrt(var + eps)` and `bias = beta - mean * scale` (computed in
  float64); fc [out, in] -> [in, out]. Raises on missing keys, unexpected keys (other
  than `num_batches_tracked` and `AuxLogits.*`) and wrong shapes, so that e.g.
  torchvision's 1000-class ImageNet Inception is rejected.
  """
  sd = {k[len("module."):] if k.startswith("module.") else k: _to_numpy(v)
        for k, v in state_dict.items()}
  expected = torch_keys()
  missing = [k for k in expected if k not in sd]
  known = set(expected)
  unexpected = [k for k in sd if k not in known and not k.endswith(".num_batches_tracked")
                and not k.startswith("AuxLogits.")]
  if missing or unexpected:
    raise ValueError(
        "not a pytorch-fid FID Inception state dict: "
        f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys "
        f"{unexpected[:5]}. " + _HOW_TO_GET_WEIGHTS)

  params: Params = {}
  for (block, name), ((kh, kw), _, _) in _CONV_SPECS.items():
    prefix = name if block is None else f"{block}.{name}"
    w = sd[f"{prefix}.conv.weight"]
    if w.ndim != 4 or w.shape[2:] != (kh, kw):
      raise ValueError(f"{prefix}.conv.weight: expected OIHW with kernel {(kh, kw)}, "
                       f"got shape {w.shape}")
    gamma, beta, mean, var = (sd[f"{prefix}.bn.{leaf}"].astype(np.float64)
                              for leaf in ("weight", "bias", "running_mean", "running_var"))
    scale = gamma / np.sqrt(var + BN_EPS)
    leaf = {"kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0), dtype=np.float32),
            "scale": scale.astype(np.float32),
            "bias": (beta - mean * scale).astype(np.float32)}
    if block is None:
      params[name] = leaf
    else:
      params.setdefault(block, {})[name] = leaf

  fc_w, fc_b = sd["fc.weight"], sd["fc.bias"]
  if fc_w.shape != (NUM_CLASSES, POOL3_DIM) or fc_b.shape != (NUM_CLASSES,):
    raise ValueError(
        f"fc has shape {fc_w.shape}, expected ({NUM_CLASSES}, {POOL3_DIM}): this is not the "
        f"FID Inception (torchvision's ImageNet Inception has 1000 classes). "
        + _HOW_TO_GET_WEIGHTS)
  params["fc"] = {"kernel": np.ascontiguousarray(fc_w.T, dtype=np.float32),
                  "bias": fc_b.astype(np.float32)}
  return params


def load_params(path_or_state_dict: str | os.PathLike | Mapping[str, Any] | None = None) -> Params:
  """FID Inception params from pytorch-fid's weight file, an .npz, or a state dict.

  Args:
    path_or_state_dict: a `.pth`/`.pt` file saved by torch (torch is imported only
      here; `pt_inception-2015-12-05-6726825d.pth` is the standard one), an `.npz`
      holding the same torch keys, a mapping {torch key: array/tensor}, or an
      already converted params pytree (returned as jnp arrays). None reads the path
      from the environment variable SCOREJAX_INCEPTION_WEIGHTS.

  Returns:
    The params pytree of jnp float32 arrays for `features`.

  Raises:
    FileNotFoundError, with instructions for obtaining the weights, when no weights
    are given or the file does not exist.
  """
  src = path_or_state_dict
  if src is None:
    src = os.environ.get(WEIGHTS_ENV)
    if not src:
      raise FileNotFoundError(f"no FID Inception weights given and ${WEIGHTS_ENV} is unset. "
                              + _HOW_TO_GET_WEIGHTS)
  if isinstance(src, Mapping):
    if "Conv2d_1a_3x3" in src and isinstance(src["Conv2d_1a_3x3"], Mapping):
      return jax.tree.map(jnp.asarray, dict(src))  # already converted
    return jax.tree.map(jnp.asarray, convert_state_dict(src))

  path = os.fspath(src)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"FID Inception weight file {path!r} does not exist. "
                            + _HOW_TO_GET_WEIGHTS)
  if path.endswith(".npz"):
    with np.load(path) as f:
      state_dict = {k: f[k] for k in f.files}
  else:
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(
          f"reading {path!r} needs torch, which is not installed. Install torch (CPU build "
          f"is enough), or convert the file to .npz where torch is available: "
          f"python -c \"import torch, numpy as np; sd = torch.load('{path}', "
          f"map_location='cpu'); np.savez('pt_inception.npz', "
          f"**{{k: v.numpy() for k, v in sd.items()}})\"") from e
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
      state_dict = state_dict["state_dict"]
  return jax.tree.map(jnp.asarray, convert_state_dict(state_dict))


def _to_numpy(v: Any) -> np.ndarray:
  if hasattr(v, "detach"):  # torch.Tensor, without importing torch
    v = v.detach().cpu().numpy()
  return np.asarray(v)


# ----------------------------------------------------------------------------------------
# Layers (NHWC).


def _conv_bn_relu(p: Mapping[str, Array], x: Array, spec, precision) -> Array:
  """torchvision BasicConv2d in eval mode: conv (no bias) -> BatchNorm -> ReLU."""
  _, stride, (ph, pw) = spec
  y = jax.lax.conv_general_dilated(
      x, p["kernel"], window_strides=(stride, stride), padding=((ph, ph), (pw, pw)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)
  return jax.nn.relu(y * p["scale"].reshape(1, 1, 1, -1) + p["bias"].reshape(1, 1, 1, -1))


def _max_pool(x: Array, stride: int, pad: int = 0) -> Array:
  """3x3 max pool; torch pads with -inf, so padding never wins."""
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, stride, stride, 1),
                               ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def _avg_pool_exclude_pad(x: Array) -> Array:
  """avg_pool2d(3, stride=1, padding=1, count_include_pad=False): mean over real cells."""
  pads = ((0, 0), (1, 1), (1, 1), (0, 0))
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), pads)
  h, w = x.shape[1:3]
  # Number of real cells per window (static): separable, min(i+1, n-1) - max(i-1, 0) + 1.
  count_1d = lambda n: np.minimum(np.arange(n) + 1, n - 1) - np.maximum(np.arange(n) - 1, 0) + 1
  count = np.outer(count_1d(h), count_1d(w)).astype(np.float32)[None, :, :, None]
  return total / count


def _mixed(p: Mapping[str, Any], x: Array, kind: str, precision) -> Array:
  """One Inception block; branch outputs concatenated in torchvision's order."""
  spec = {name: (k, s, pad) for name, k, s, pad in _BRANCHES[kind]}
  conv = lambda name, h: _conv_bn_relu(p[name], h, spec[name], precision)

  if kind == "A":
    b1 = conv("branch1x1", x)
    b5 = conv("branch5x5_2", conv("branch5x5_1", x))
    b3 = conv("branch3x3dbl_3", conv("branch3x3dbl_2", conv("branch3x3dbl_1", x)))
    bp = conv("branch_pool", _avg_pool_exclude_pad(x))
    outs = (b1, b5, b3, bp)
  elif kind == "B":
    b3 = conv("branch3x3", x)
    bd = conv("branch3x3dbl_3", conv("branch3x3dbl_2", conv("branch3x3dbl_1", x)))
    outs = (b3, bd, _max_pool(x, stride=2))
  elif kind == "C":
    b1 = conv("branch1x1", x)
    b7 = conv("branch7x7_3", conv("branch7x7_2", conv("branch7x7_1", x)))
    bd = x
    for i in range(1, 6):
      bd = conv(f"branch7x7dbl_{i}", bd)
    bp = conv("branch_pool", _avg_pool_exclude_pad(x))
    outs = (b1, b7, bd, bp)
  elif kind == "D":
    b3 = conv("branch3x3_2", conv("branch3x3_1", x))
    b7 = x
    for i in range(1, 5):
      b7 = conv(f"branch7x7x3_{i}", b7)
    outs = (b3, b7, _max_pool(x, stride=2))
  else:  # E1 / E2
    b1 = conv("branch1x1", x)
    h = conv("branch3x3_1", x)
    b3 = jnp.concatenate([conv("branch3x3_2a", h), conv("branch3x3_2b", h)], axis=-1)
    h = conv("branch3x3dbl_2", conv("branch3x3dbl_1", x))
    bd = jnp.concatenate([conv("branch3x3dbl_3a", h), conv("branch3x3dbl_3b", h)], axis=-1)
    pooled = _avg_pool_exclude_pad(x) if kind == "E1" else _max_pool(x, stride=1, pad=1)
    outs = (b1, b3, bd, conv("branch_pool", pooled))
  return jnp.concatenate(outs, axis=-1)


# ----------------------------------------------------------------------------------------
# Input pipeline.


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
  """(n_out, n_in) weights of torch's bilinear resize, align_corners=False, no antialias.

  src = (dst + 0.5) * n_in / n_out - 0.5, clamped below at 0; the two neighbours
  floor(src) and min(floor(src) + 1, n_in - 1) get weights 1 - frac and frac. Computed
  in float32 like torch's CPU kernel.
  """
  scale = np.float32(n_in) / np.float32(n_out)
  dst = np.arange(n_out, dtype=np.float32)
  src = np.maximum(scale * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0.0))
  i0 = np.floor(src).astype(np.int64)
  i0 = np.minimum(i0, n_in - 1)
  i1 = np.minimum(i0 + 1, n_in - 1)
  frac = (src - i0.astype(np.float32)).astype(np.float32)
  m = np.zeros((n_out, n_in), np.float32)
  rows = np.arange(n_out)
  np.add.at(m, (rows, i0), np.float32(1) - frac)
  np.add.at(m, (rows, i1), frac)
  return m


def resize_input(x: Array, size: int = INPUT_SIZE, precision=jax.lax.Precision.HIGHEST) -> Array:
  """Float NHWC images -> (B, size, size, C), as F.interpolate(bilinear, align_corners=False)."""
  mh = jnp.asarray(_bilinear_matrix(x.shape[1], size))
  mw = jnp.asarray(_bilinear_matrix(x.shape[2], size))
  return jnp.einsum("ph,bhwc,qw->bpqc", mh, x, mw, precision=precision)


# ----------------------------------------------------------------------------------------
# Forward.


def blocks(params: Params, images: Array, *,
           precision=jax.lax.Precision.HIGHEST) -> dict[str, Array]:
  """Every output of the network, for debugging and tests (NHWC).

  Returns {'resized' (B, 299, 299, 3) in [0, 1], 'block0' (B, 73, 73, 64),
  'block1' (B, 35, 35, 192), 'block2' (B, 17, 17, 768), 'block3' (B, 8, 8, 2048),
  'pool3' (B, 2048), 'logits' (B, 1008)} — pytorch-fid's blocks 0-2 plus the
  Mixed_7c output before global average pooling.
  """
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must be NHWC with 3 channels, got shape {images.shape}")
  if images.dtype != jnp.uint8:
    raise TypeError(f"images must be uint8 in [0, 255] (as FID expects quantized samples), "
                    f"got {images.dtype}; e.g. np.clip(np.round(x * 255), 0, 255).astype(np.uint8)")
  out = {}
  x = images.astype(jnp.float32) / 255.0  # torchvision ToTensor, as pytorch-fid feeds it
  x = out["resized"] = resize_input(x, precision=precision)
  x = 2.0 * x - 1.0  # pytorch-fid's normalize_input: [0, 1] -> [-1, 1]

  conv = lambda name, h: _conv_bn_relu(params[name], h, _CONV_SPECS[(None, name)], precision)
  x = conv("Conv2d_2b_3x3", conv("Conv2d_2a_3x3", conv("Conv2d_1a_3x3", x)))
  x = out["block0"] = _max_pool(x, stride=2)
  x = conv("Conv2d_4a_3x3", conv("Conv2d_3b_1x1", x))
  x = out["block1"] = _max_pool(x, stride=2)
  for block, kind in _MIXED:
    x = _mixed(params[block], x, kind, precision)
    if block == "Mixed_6e":
      out["block2"] = x
  out["block3"] = x
  pool3 = out["pool3"] = jnp.mean(x, axis=(1, 2))  # adaptive average pool to 1x1
  # torchvision: avgpool -> dropout (identity in eval) -> flatten -> fc.
  out["logits"] = jnp.dot(pool3, params["fc"]["kernel"], precision=precision) + params["fc"]["bias"][None]
  return out


@functools.partial(jax.jit, static_argnames=("precision",))
def features(params: Params, images: Array, *,
             precision=jax.lax.Precision.HIGHEST) -> tuple[Array, Array]:
  """FID Inception features of a batch.

  Args:
    params: from `load_params`.
    images: (B, H, W, 3) uint8, any H, W (bilinearly resized to 299x299).
    precision: matmul/conv precision; HIGHEST keeps float32 accuracy on GPU/TPU
      (the default there would use TF32/bf16 passes).

  Returns:
    pool3 (B, 2048): the FID/KID feature; logits (B, 1008): pre-softmax scores of the
    1008-way classifier (for the Inception Score).
  """
  out = blocks(params, images, precision=precision)
  return out["pool3"], out["logits"]


def features_batched(params: Params, images: np.ndarray, batch_size: int = 200,
                     **kwargs) -> tuple[np.ndarray, np.ndarray]:
  """`features` over a large host array, `batch_size` at a time (the last batch is
  padded, so one compilation serves all); returns numpy (N, 2048), (N, 1008)."""
  images = np.asarray(images)
  n = images.shape[0]
  pools, logits = [], []
  for start in range(0, n, batch_size):
    chunk = images[start:start + batch_size]
    m = chunk.shape[0]
    if m < batch_size and n > batch_size:
      chunk = np.concatenate([chunk, np.zeros((batch_size - m,) + chunk.shape[1:], chunk.dtype)])
    p, l = features(params, jnp.asarray(chunk), **kwargs)
    pools.append(np.asarray(p)[:m])
    logits.append(np.asarray(l)[:m])
  if not pools:
    return np.zeros((0, POOL3_DIM), np.float32), np.zeros((0, NUM_CLASSES), np.float32)
  return np.concatenate(pools), np.concatenate(logits)
