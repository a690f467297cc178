"""NCSNv2 (Song & Ermon 2020), as score_sde_pytorch's `models/ncsnv2.py` builds it.

Numerically equal to score_sde_pytorch (commit cb1f359f, with the two runtime fixes
the fixtures README records: bias-free RCU/CRP convs, SAME padding for dilated
convs) and loads its state dicts (`convert`).

The network is a RefineNet (Lin et al. 2017) with InstanceNorm++ (Song & Ermon 2019,
App. A) and ELU. NCSNv2 is *not* conditioned on the noise level inside the
network: following Song & Ermon 2020 (technique 3, "noise conditioning"), it
computes s(x) / sigma, where sigma = sigmas[labels] and `sigmas` is the decreasing
geometric ladder exp(linspace(log sigma_max, log sigma_min, num_scales))
(techniques 1-2). Labels are therefore integer indices into that table. It applies
`2x - 1` to its input when `data.centered` is False.

The three published sizes differ only in their levels (`ch_mult`, `dilations`):
ncsnv2_64 (< 96 px), ncsnv2_128 and ncsnv2_256. A level is two residual blocks,
the first of which down-samples (except at level 0). With dilation > 1, score_sde's
"down-sampling" block keeps the resolution: the dilated convs replace it.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from scorejax.models.convert import convert_state_dict
from scorejax.models.layers import get_act, per_channel
from scorejax.sde import ncsn_sigmas

Array = jax.Array

# config.model.name -> (ch_mult, dilations) per level, and the torch names
# (residual blocks, refine block) of each level, for `convert`.
VARIANTS: Mapping[str, dict] = {
    "ncsnv2_64": dict(
        ch_mult=(1, 2, 2, 2), dilations=(1, 1, 2, 4),
        torch_names=(("res1", "refine4"), ("res2", "refine3"), ("res3", "refine2"),
                     ("res4", "refine1"))),
    "ncsnv2_128": dict(
        ch_mult=(1, 2, 2, 4, 4), dilations=(1, 1, 1, 2, 4),
        torch_names=(("res1", "refine5"), ("res2", "refine4"), ("res3", "refine3"),
                     ("res4", "refine2"), ("res5", "refine1"))),
    "ncsnv2_256": dict(
        ch_mult=(1, 2, 2, 2, 4, 4), dilations=(1, 1, 1, 1, 2, 4),
        torch_names=(("res1", "refine5"), ("res2", "refine4"), ("res3", "refine3"),
                     ("res31", "refine31"), ("res4", "refine2"), ("res5", "refine1"))),
}


def ncsn_conv(features: int, kernel_size: int = 3, dilation: int = 1, use_bias: bool = True,
              name: str | None = None) -> nn.Conv:
  """NCSN's conv: SAME padding (also when dilated: padding = dilation, as the JAX
  score_sde and ermongroup/ncsnv2 do; see the fixtures README's runtime fixes).

  Kernels start as PyTorch's default U(+-1/sqrt(fan_in)) (variance_scaling(1/3,
  fan_in, uniform)); biases start at zero (PyTorch draws them from the same range,
  which flax's bias initialiser cannot see the fan-in for).
  """
  return nn.Conv(features, (kernel_size, kernel_size), padding="SAME",
                 kernel_dilation=(dilation, dilation), use_bias=use_bias,
                 kernel_init=nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
                 name=name)


def _normal_around_one(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


class InstanceNorm2dPlus(nn.Module):
  """InstanceNorm++ (Song & Ermon 2019, App. A; unconditional, as NCSNv2 uses it).

  Instance norm loses the colour shift between channels, so the per-channel means
  mu_k are normalised across channels and added back:
  z_k = gamma_k ((x_k - mu_k) / s_k + alpha_k (mu_k - m) / sqrt(v + eps)) + beta_k,
  with s_k the biased per-channel std (eps 1e-5) and m, v the mean and *unbiased*
  variance of the mu_k over channels, as torch.var computes it.
  """
  use_bias: bool = True
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x_BxHxWxC: Array) -> Array:
    C = x_BxHxWxC.shape[-1]
    means_BxC = jnp.mean(x_BxHxWxC, axis=(1, 2))
    m = jnp.mean(means_BxC, axis=-1, keepdims=True)
    v = jnp.var(means_BxC, axis=-1, keepdims=True, ddof=1)
    means_plus_BxC = (means_BxC - m) / jnp.sqrt(v + self.eps)
    var_BxC = jnp.var(x_BxHxWxC, axis=(1, 2))
    h = (x_BxHxWxC - means_BxC[:, None, None, :]) / jnp.sqrt(var_BxC + self.eps)[:, None, None, :]
    alpha = self.param("alpha", _normal_around_one, (C,))
    gamma = self.param("gamma", _normal_around_one, (C,))
    h = per_channel(gamma, h) * (h + means_plus_BxC[:, None, None, :] * per_channel(alpha, h))
    if self.use_bias:
      h = h + per_channel(self.param("beta", nn.initializers.zeros, (C,)), h)
    return h


class ConvMeanPool(nn.Module):
  """A conv (SAME padding) followed by 2x2 mean pooling."""
  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x_BxHxWxC: Array) -> Array:
    h = ncsn_conv(self.features, self.kernel_size, name="conv")(x_BxHxWxC)
    return (h[:, ::2, ::2] + h[:, 1::2, ::2] + h[:, ::2, 1::2] + h[:, 1::2, 1::2]) / 4.0


class ResidualBlock(nn.Module):
  """NCSNv2's pre-activation residual block: IN++ - ELU - conv - IN++ - ELU - conv.

  `resample='down'` halves the resolution with `ConvMeanPool` when dilation is 1;
  with dilation > 1 both convs (and the 3x3 shortcut) are dilated and the
  resolution is kept. The shortcut is the identity when neither the channels
  nor the resolution change.
  """
  output_dim: int
  resample: str | None = None
  dilation: int = 1
  act: Callable[[Array], Array] = nn.elu

  @nn.compact
  def __call__(self, x_BxHxWxC: Array) -> Array:
    input_dim = x_BxHxWxC.shape[-1]
    if self.resample not in (None, "down"):
      raise ValueError(f"resample={self.resample!r} is not one of (None, 'down')")
    down = self.resample == "down"
    dilated = self.dilation > 1
    mid_dim = input_dim if down else self.output_dim

    h = self.act(InstanceNorm2dPlus(name="normalize1")(x_BxHxWxC))
    h = ncsn_conv(mid_dim, dilation=self.dilation, name="conv1")(h)
    h = self.act(InstanceNorm2dPlus(name="normalize2")(h))
    if down and not dilated:
      h = ConvMeanPool(self.output_dim, 3, name="conv2")(h)
    else:
      h = ncsn_conv(self.output_dim, dilation=self.dilation, name="conv2")(h)

    if self.output_dim == input_dim and not down:
      shortcut = x_BxHxWxC
    elif dilated:
      shortcut = ncsn_conv(self.output_dim, 3, self.dilation, name="shortcut")(x_BxHxWxC)
    elif down:
      shortcut = ConvMeanPool(self.output_dim, 1, name="shortcut")(x_BxHxWxC)
    else:
      shortcut = ncsn_conv(self.output_dim, 1, name="shortcut")(x_BxHxWxC)
    return shortcut + h


class RCUBlock(nn.Module):
  """Residual conv unit (Lin et al. 2017, Sec. 3.2): n_blocks x (n_stages x [ELU, conv]) + x."""
  n_blocks: int
  n_stages: int
  act: Callable[[Array], Array] = nn.elu

  @nn.compact
  def __call__(self, x_BxHxWxC: Array) -> Array:
    C = x_BxHxWxC.shape[-1]
    for i in range(self.n_blocks):
      residual = x_BxHxWxC
      for j in range(self.n_stages):
        x_BxHxWxC = ncsn_conv(C, use_bias=False, name=f"{i + 1}_{j + 1}_conv")(self.act(x_BxHxWxC))
      x_BxHxWxC = x_BxHxWxC + residual
    return x_BxHxWxC


class CRPBlock(nn.Module):
  """Chained residual pooling (Lin et al. 2017, Sec. 3.2): chained [max-pool 5, conv] sums."""
  n_stages: int
  act: Callable[[Array], Array] = nn.elu

  @nn.compact
  def __call__(self, x_BxHxWxC: Array) -> Array:
    C = x_BxHxWxC.shape[-1]
    x = self.act(x_BxHxWxC)
    path = x
    for i in range(self.n_stages):
      # MaxPool2d(5, stride 1, padding 2): the padding never wins the max.
      path = nn.max_pool(path, (5, 5), strides=(1, 1), padding=((2, 2), (2, 2)))
      path = ncsn_conv(C, use_bias=False, name=f"convs_{i}")(path)
      x = path + x
    return x


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
  """(n_out, n_in) weights of 1-D linear interpolation with align_corners=True."""
  src = np.zeros(n_out) if n_out == 1 else np.arange(n_out) * ((n_in - 1) / (n_out - 1))
  lo = np.clip(np.floor(src).astype(np.int64), 0, n_in - 1)
  hi = np.minimum(lo + 1, n_in - 1)
  frac = src - lo
  mat = np.zeros((n_out, n_in))
  np.add.at(mat, (np.arange(n_out), lo), 1.0 - frac)
  np.add.at(mat, (np.arange(n_out), hi), frac)
  return mat.astype(np.float32)


def resize_bilinear_align_corners(x_BxHxWxC: Array, shape: tuple[int, int]) -> Array:
  """torch's F.interpolate(mode='bilinear', align_corners=True), as two 1-D interpolations."""
  _, H, W, _ = x_BxHxWxC.shape
  if (H, W) == tuple(shape):
    return x_BxHxWxC
  h = jnp.einsum("oh,bhwc->bowc", _interp_matrix(H, shape[0]), x_BxHxWxC)
  return jnp.einsum("pw,bowc->bopc", _interp_matrix(W, shape[1]), h)


class MSFBlock(nn.Module):
  """Multi-resolution fusion (Lin et al. 2017, Sec. 3.2): sum of conv'd, upsampled inputs."""
  features: int

  @nn.compact
  def __call__(self, xs: Sequence[Array], shape: tuple[int, int]) -> Array:
    total = 0.0
    for i, x in enumerate(xs):
      h = ncsn_conv(self.features, name=f"convs_{i}")(x)
      total = total + resize_bilinear_align_corners(h, shape)
    return total


class RefineBlock(nn.Module):
  """RefineNet block (Lin et al. 2017, Fig. 3): RCU per input, MSF, CRP, output RCU.

  `start` (the coarsest block, one input) has no MSF; `end` (the finest) has a
  three-block output RCU.
  """
  features: int
  start: bool = False
  end: bool = False
  act: Callable[[Array], Array] = nn.elu

  @nn.compact
  def __call__(self, xs: Sequence[Array], shape: tuple[int, int]) -> Array:
    hs = [RCUBlock(2, 2, self.act, name=f"adapt_convs_{i}")(x) for i, x in enumerate(xs)]
    if self.start:
      assert len(hs) == 1
      h = hs[0]
    else:
      h = MSFBlock(self.features, name="msf")(hs, shape)
    h = CRPBlock(2, self.act, name="crp")(h)
    return RCUBlock(3 if self.end else 1, 2, self.act, name="output_convs")(h)


class NCSNv2(nn.Module):
  """NCSNv2 score network s(x, i) = RefineNet(x) / sigmas[i] (Song & Ermon 2020).

  `__call__(x, labels, train)`: x (B, H, W, C) NHWC; labels (B,) integer indices
  into the decreasing table exp(linspace(log sigma_max, log sigma_min, num_scales)).
  `train` is accepted for the common interface (NCSNv2 has no dropout).
  """
  nf: int = 128
  ch_mult: Sequence[int] = (1, 2, 2, 2)
  dilations: Sequence[int] = (1, 1, 2, 4)
  num_channels: int = 3
  centered: bool = False
  nonlinearity: str = "elu"
  sigma_min: float = 0.01
  sigma_max: float = 50.0
  num_scales: int = 232

  @nn.compact
  def __call__(self, x_BxHxWxC: Array, labels: Array, train: bool) -> Array:
    del train  # no dropout or batch statistics
    act = get_act(self.nonlinearity)
    nf, levels = self.nf, len(self.ch_mult)
    h = x_BxHxWxC if self.centered else 2.0 * x_BxHxWxC - 1.0
    h = ncsn_conv(nf, name="begin_conv")(h)

    layers = []
    for i in range(levels):
      out = nf * self.ch_mult[i]
      h = ResidualBlock(out, None if i == 0 else "down", self.dilations[i], act,
                        name=f"level{i}_res0")(h)
      h = ResidualBlock(out, None, self.dilations[i], act, name=f"level{i}_res1")(h)
      layers.append(h)

    # Refine from coarse to fine; each block outputs the channels of the next finer level.
    ref = None
    for i in reversed(range(levels)):
      xs = [layers[i]] if ref is None else [layers[i], ref]
      ref = RefineBlock(nf * self.ch_mult[max(i - 1, 0)], start=ref is None, end=i == 0, act=act,
                        name=f"level{i}_refine")(xs, layers[i].shape[1:3])

    h = act(InstanceNorm2dPlus(name="normalizer")(ref))
    h = ncsn_conv(self.num_channels, name="end_conv")(h)

    sigmas = jnp.asarray(ncsn_sigmas(self.sigma_min, self.sigma_max, self.num_scales), h.dtype)
    return h / sigmas[labels.astype(jnp.int32)][:, None, None, None]


def build(config) -> NCSNv2:
  """`NCSNv2` from a score_sde config; `config.model.name` picks the size."""
  m = config.model
  if m.name not in VARIANTS:
    raise ValueError(f"config.model.name={m.name!r} is not one of {sorted(VARIANTS)}")
  arch = VARIANTS[m.name]
  return NCSNv2(
      nf=int(m.nf), ch_mult=arch["ch_mult"], dilations=arch["dilations"],
      num_channels=int(config.data.num_channels), centered=bool(config.data.centered),
      nonlinearity=str(m.get("nonlinearity", "elu")), sigma_min=float(m.sigma_min),
      sigma_max=float(m.sigma_max), num_scales=int(m.num_scales))


def image_size_multiple(config) -> tuple[int, str]:
  """(k, why): the image sizes this NCSNv2 can take are the multiples of k.

  Each level after the first whose dilation is 1 halves the resolution with a 2x2
  mean pool (`ConvMeanPool`), which needs an even size; dilated levels keep it.
  """
  dilations = VARIANTS[config.model.name]["dilations"]
  halvings = sum(1 for i, d in enumerate(dilations) if i > 0 and d == 1)
  return 2 ** halvings, (f"it halves the resolution {halvings} time(s) (its levels' dilations "
                         f"are {dilations}; each undilated level after the first mean-pools 2x2)")


def convert(state_dict: Mapping[str, Any], config) -> dict:
  """{'params': ...} for `build(config)` from a score_sde_pytorch NCSNv2 state dict.

  Torch's `res<k>.<b>` and `refine<k>` map onto `level<i>_res<b>` and `level<i>_refine`;
  inside blocks the names are torch's with `.<n>` list indices joined as `_<n>`.
  `sigmas` is a derived buffer and is skipped. A missing, unexpected or
  wrong-shaped key raises ValueError naming it (`convert.convert_state_dict`).
  """
  names = VARIANTS[config.model.name]["torch_names"]
  level_of = {}
  for i, (res, refine) in enumerate(names):
    level_of[res] = f"level{i}_res"
    level_of[refine] = f"level{i}_refine"

  def to_flax(key):
    parts = key.split(".")
    head = parts[0]
    if len(parts) < 2:
      return None
    if head in ("begin_conv", "end_conv", "normalizer"):
      path, rest = [head], parts[1:-1]
    elif head in level_of and level_of[head].endswith("_res"):
      if len(parts) < 3 or not parts[1].isdigit():
        return None
      path, rest = [level_of[head] + parts[1]], parts[2:-1]
    elif head in level_of:
      path, rest = [level_of[head]], parts[1:-1]
    else:
      return None
    for p in rest:  # 'adapt_convs.0' -> 'adapt_convs_0', 'convs.1' -> 'convs_1'
      if p.isdigit():
        path[-1] = f"{path[-1]}_{p}"
      else:
        path.append(p)
    return tuple(path), parts[-1]

  def to_torch(modules, leaf):
    head = modules[0]
    res = re.fullmatch(r"level(\d+)_res(\d+)", head)
    refine = re.fullmatch(r"level(\d+)_refine", head)
    if head in ("begin_conv", "end_conv", "normalizer"):
      parts = [head]
    elif res and int(res[1]) < len(names):
      parts = [names[int(res[1])][0], res[2]]
    elif refine and int(refine[1]) < len(names):
      parts = [names[int(refine[1])][1]]
    else:
      return None
    for m in modules[1:]:  # 'adapt_convs_0' -> 'adapt_convs.0'
      indexed = re.fullmatch(r"(.*[^\d_])_(\d+)", m)
      parts += [indexed[1], indexed[2]] if indexed else [m]
    return ".".join((*parts, leaf))

  return convert_state_dict(state_dict, build(config), config, to_flax=to_flax,
                            to_torch=to_torch,
                            architecture=f"NCSNv2 (config.model.name={config.model.name!r})")
