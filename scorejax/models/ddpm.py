"""The DDPM U-Net (Ho et al. 2020), as score_sde_pytorch's `models/ddpm.py` builds it.

Numerically equal to score_sde_pytorch (commit cb1f359f) and loads its state
dicts (`convert`). The network eps_theta(x_i, i) predicts the noise of the DDPM
chain x_i = sqrt(alphabar_i) x_0 + sqrt(1 - alphabar_i) z (Ho et al. 2020, Eq. 4
and the loss of Eq. 14); `scorejax.models.score_fn` turns it into the score
-eps_theta / sqrt(1 - alphabar_i) (Song et al. 2021, "score_sde", Sec. 3.3/App. B).

Architecture (Ho et al. 2020, App. B; PixelCNN++-style U-Net):

* labels are integer timesteps i in [0, N); they are embedded with the
  transformer sinusoidal embedding (`layers.get_timestep_embedding`) followed by
  Dense(4 nf) - swish - Dense(4 nf);
* `len(ch_mult)` resolutions, `num_res_blocks` `ResnetBlock`s per resolution on
  the way down and `num_res_blocks + 1` on the way up (each consuming a skip);
* GroupNorm with 32 groups and eps 1e-6 everywhere;
* self-attention (`AttnBlock`) at the resolutions in `attn_resolutions`: on the way
  down after *every* res block, on the way up *once per level*, after that level's
  res blocks. This is score_sde's placement; it gives 35.22M parameters for
  CIFAR-10, not the 35.7M of Ho et al.'s TF code, which attends after every up block.

score_sde's DDPM applies `2x - 1` to its input when `data.centered` is False, and
ignores `model.conditional` (both of its branches build time-conditioned blocks),
so there is no such field here.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from scorejax.models import precision
from scorejax.models.convert import convert_state_dict
from scorejax.models.layers import (NIN, add_class_embedding, default_init, get_act,
                                    get_timestep_embedding, softmax_f32)
from scorejax.sde import ncsn_sigmas

Array = jax.Array


def _group_norm(name: str, dtype: Any) -> nn.GroupNorm:
  # DDPM's fixed 32 groups (NCSN++'s `layers.group_norm` uses min(C // 4, 32));
  # two-pass variance, as torch's GroupNorm computes it; statistics in float32.
  return nn.GroupNorm(num_groups=32, epsilon=1e-6, use_fast_variance=False, dtype=dtype,
                      name=name)


def _conv3x3(features: int, name: str, dtype: Any, init_scale: float = 1.0, stride: int = 1,
             padding: Any = ((1, 1), (1, 1))) -> nn.Conv:
  return nn.Conv(features, (3, 3), strides=(stride, stride), padding=padding,
                 kernel_init=default_init(init_scale), dtype=dtype, name=name)


class AttnBlock(nn.Module):
  """Single-head self-attention over all pixels, with a residual connection.

  softmax(q k^T / sqrt(C)) v on GroupNorm(x), then a zero-initialised output projection
  (Ho et al. 2020, App. B; Wang et al. 2018 non-local block).
  """
  dtype: Any = jnp.float32  # activations (scorejax.models.precision)

  @nn.compact
  def __call__(self, x_BxHxWxC: Array) -> Array:
    B, H, W, C = x_BxHxWxC.shape
    h = _group_norm("GroupNorm_0", self.dtype)(x_BxHxWxC)
    q = NIN(C, name="NIN_0", dtype=self.dtype)(h)
    k = NIN(C, name="NIN_1", dtype=self.dtype)(h)
    v = NIN(C, name="NIN_2", dtype=self.dtype)(h)
    logits = jnp.einsum("bhwc,bijc->bhwij", q, k) * (C ** -0.5)
    weights = softmax_f32(logits.reshape(B, H, W, H * W), axis=-1).reshape(B, H, W, H, W)
    h = jnp.einsum("bhwij,bijc->bhwc", weights, v)
    h = NIN(C, init_scale=0.0, name="NIN_3", dtype=self.dtype)(h)
    return x_BxHxWxC + h


class Downsample(nn.Module):
  """Halves the resolution: a stride-2 3x3 conv (or 2x2 average pool) after padding (0, 1).

  The asymmetric pad emulates TensorFlow's 'SAME' padding of the original DDPM.
  """
  with_conv: bool
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BxHxWxC: Array) -> Array:
    B, H, W, C = x_BxHxWxC.shape
    if self.with_conv:
      h = _conv3x3(C, "Conv_0", self.dtype, stride=2, padding=((0, 1), (0, 1)))(x_BxHxWxC)
    else:
      h = jnp.pad(x_BxHxWxC, ((0, 0), (0, 1), (0, 1), (0, 0)))
      h = nn.avg_pool(h, (2, 2), strides=(2, 2))
    assert h.shape == (B, H // 2, W // 2, C)
    return h


class Upsample(nn.Module):
  """Doubles the resolution: nearest-neighbour, then (optionally) a 3x3 conv."""
  with_conv: bool
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BxHxWxC: Array) -> Array:
    h = jnp.repeat(jnp.repeat(x_BxHxWxC, 2, axis=1), 2, axis=2)
    if self.with_conv:
      h = _conv3x3(x_BxHxWxC.shape[-1], "Conv_0", self.dtype)(h)
    return h


class ResnetBlock(nn.Module):
  """DDPM's residual block (Ho et al. 2020, App. B; score_sde's `ResnetBlockDDPM`).

  h = Conv(act(GN(x))) + Dense(act(temb)); h = Conv0(dropout(act(GN(h)))); out = NIN(x) + h,
  with the 1x1 shortcut (NIN) only when the channel count changes.
  """
  out_ch: int
  dropout: float
  act: Callable[[Array], Array] = nn.swish
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BxHxWxC: Array, temb_BxT: Array | None, train: bool) -> Array:
    in_ch, dt = x_BxHxWxC.shape[-1], self.dtype
    h = self.act(_group_norm("GroupNorm_0", dt)(x_BxHxWxC))
    h = _conv3x3(self.out_ch, "Conv_0", dt)(h)
    if temb_BxT is not None:
      h = h + nn.Dense(self.out_ch, kernel_init=default_init(), dtype=dt, name="Dense_0")(
          self.act(temb_BxT))[:, None, None, :]
    h = self.act(_group_norm("GroupNorm_1", dt)(h))
    h = nn.Dropout(self.dropout)(h, deterministic=not train)
    h = _conv3x3(self.out_ch, "Conv_1", dt, init_scale=0.0)(h)
    if in_ch != self.out_ch:
      x_BxHxWxC = NIN(self.out_ch, name="NIN_0", dtype=dt)(x_BxHxWxC)
    return x_BxHxWxC + h


def module_names(num_levels: int, num_res_blocks: int, attn_levels: Sequence[int]) -> list[str]:
  """Flax submodule names in the order score_sde's DDPM fills its `all_modules` list.

  `attn_levels` are the level indices whose resolution is in `attn_resolutions`.
  This order is the contract between `DDPM.__call__` (which uses the names) and
  `convert` (which maps torch's `all_modules.<index>` onto them). A conv-less
  resampler has no parameters but still takes its index, as in torch.
  """
  names = ["temb_dense_0", "temb_dense_1", "conv_in"]
  for i in range(num_levels):
    for j in range(num_res_blocks):
      names.append(f"down{i}_res{j}")
      if i in attn_levels:
        names.append(f"down{i}_attn{j}")
    if i != num_levels - 1:
      names.append(f"down{i}_downsample")
  names += ["mid_res0", "mid_attn", "mid_res1"]
  for i in reversed(range(num_levels)):
    for j in range(num_res_blocks + 1):
      names.append(f"up{i}_res{j}")
    if i in attn_levels:
      names.append(f"up{i}_attn")
    if i != 0:
      names.append(f"up{i}_upsample")
  return names + ["norm_out", "conv_out"]


class DDPM(nn.Module):
  """The DDPM noise-prediction U-Net eps_theta(x, i) (Ho et al. 2020).

  `__call__(x, labels, train)`: x (B, H, W, C) NHWC; labels (B,) integer timesteps
  (floats are accepted and embedded as they are). Returns (B, H, W, num_channels).
  With `scale_by_sigma` the output is divided by the VE ladder's sigma[labels], as
  in score_sde (off in every published DDPM config).
  """
  nf: int = 128
  ch_mult: Sequence[int] = (1, 2, 2, 2)
  num_res_blocks: int = 2
  attn_resolutions: Sequence[int] = (16,)
  dropout: float = 0.1
  resamp_with_conv: bool = True
  num_channels: int = 3
  centered: bool = True
  nonlinearity: str = "swish"
  scale_by_sigma: bool = False
  sigma_min: float = 0.01
  sigma_max: float = 50.0
  num_scales: int = 1000
  num_classes: int = 0                 # > 0: label-conditional (layers.ClassEmbedding)
  dtype: Any = jnp.float32             # activations (scorejax.models.precision); output float32

  @nn.compact
  def __call__(self, x_BxHxWxC: Array, labels: Array, train: bool,
               class_labels: Array | None = None) -> Array:
    act = get_act(self.nonlinearity)
    nf, levels = self.nf, len(self.ch_mult)
    dt = self.dtype
    block = lambda out_ch, name: ResnetBlock(out_ch, self.dropout, act, dtype=dt, name=name)

    temb = get_timestep_embedding(labels, nf)
    temb = nn.Dense(4 * nf, kernel_init=default_init(), name="temb_dense_0")(temb)
    temb = nn.Dense(4 * nf, kernel_init=default_init(), name="temb_dense_1")(act(temb))
    temb = add_class_embedding(temb, class_labels, self.num_classes)

    h = x_BxHxWxC if self.centered else 2.0 * x_BxHxWxC - 1.0
    h = h.astype(dt)

    # Down: every res block's output (and every downsampled map) is a skip.
    hs = [_conv3x3(nf, "conv_in", dt)(h)]
    for i in range(levels):
      for j in range(self.num_res_blocks):
        h = block(nf * self.ch_mult[i], f"down{i}_res{j}")(hs[-1], temb, train)
        if h.shape[2] in self.attn_resolutions:
          h = AttnBlock(dtype=dt, name=f"down{i}_attn{j}")(h)
        hs.append(h)
      if i != levels - 1:
        hs.append(Downsample(self.resamp_with_conv, dtype=dt, name=f"down{i}_downsample")(hs[-1]))

    h = hs[-1]
    h = block(h.shape[-1], "mid_res0")(h, temb, train)
    h = AttnBlock(dtype=dt, name="mid_attn")(h)
    h = block(h.shape[-1], "mid_res1")(h, temb, train)

    # Up: num_res_blocks + 1 blocks per level, each concatenating one skip.
    for i in reversed(range(levels)):
      for j in range(self.num_res_blocks + 1):
        h = block(nf * self.ch_mult[i], f"up{i}_res{j}")(
            jnp.concatenate([h, hs.pop()], axis=-1), temb, train)
      if h.shape[2] in self.attn_resolutions:
        h = AttnBlock(dtype=dt, name=f"up{i}_attn")(h)
      if i != 0:
        h = Upsample(self.resamp_with_conv, dtype=dt, name=f"up{i}_upsample")(h)
    assert not hs

    h = act(_group_norm("norm_out", dt)(h))
    h = _conv3x3(self.num_channels, "conv_out", dt, init_scale=0.0)(h)
    h = h.astype(jnp.float32)  # the output (and the loss) in float32

    if self.scale_by_sigma:
      sigmas = jnp.asarray(ncsn_sigmas(self.sigma_min, self.sigma_max, self.num_scales), h.dtype)
      h = h / sigmas[labels.astype(jnp.int32)][:, None, None, None]
    return h


def build(config) -> DDPM:
  """`DDPM` from a score_sde config (`config.model.*`, `config.data.*`)."""
  m = config.model
  return DDPM(
      nf=int(m.nf), ch_mult=tuple(int(c) for c in m.ch_mult), num_res_blocks=int(m.num_res_blocks),
      attn_resolutions=tuple(int(r) for r in m.attn_resolutions), dropout=float(m.dropout),
      resamp_with_conv=bool(m.resamp_with_conv), num_channels=int(config.data.num_channels),
      centered=bool(config.data.centered), nonlinearity=str(m.get("nonlinearity", "swish")),
      scale_by_sigma=bool(m.get("scale_by_sigma", False)), sigma_min=float(m.sigma_min),
      sigma_max=float(m.sigma_max), num_scales=int(m.num_scales),
      num_classes=int(m.get("num_classes", 0)), dtype=precision.compute_dtype(config))


def image_size_multiple(config) -> tuple[int, str]:
  """(k, why): the DDPM U-Net takes image sizes that are multiples of k = 2 ** (len(ch_mult) - 1)."""
  ch_mult = tuple(config.model.ch_mult)
  return 2 ** (len(ch_mult) - 1), (f"the U-Net halves the resolution len(config.model.ch_mult) - 1 "
                                   f"= {len(ch_mult) - 1} time(s) (config.model.ch_mult={ch_mult})")


# --- score_sde_pytorch state dicts -----------------------------------------------

def convert(state_dict: Mapping[str, Any], config) -> dict:
  """{'params': ...} for `build(config)` from a score_sde_pytorch DDPM state dict.

  Keys are torch's `all_modules.<index>.<...>` (without 'module.'); `<index>` is the
  position in `module_names`, the rest of the key is kept. `sigmas` is a derived
  buffer and is skipped. A missing, unexpected or wrong-shaped key raises
  ValueError naming it (`convert.convert_state_dict`).
  """
  m = config.model
  levels = len(m.ch_mult)
  attn_levels = [i for i in range(levels)
                 if config.data.image_size // 2 ** i in tuple(m.attn_resolutions)]
  names = module_names(levels, int(m.num_res_blocks), attn_levels)
  index = {name: i for i, name in enumerate(names)}

  def to_flax(key):
    parts = key.split(".")
    if parts[0] != "all_modules" or len(parts) < 3 or not parts[1].isdigit():
      return None
    if int(parts[1]) >= len(names):
      return None
    return (names[int(parts[1])], *parts[2:-1]), parts[-1]

  def to_torch(modules, leaf):
    if modules[0] not in index:
      return None
    return ".".join(("all_modules", str(index[modules[0]]), *modules[1:], leaf))

  return convert_state_dict(state_dict, build(config), config, to_flax=to_flax,
                            to_torch=to_torch, architecture="DDPM U-Net (config.model.name='ddpm')")
