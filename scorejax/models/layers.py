"""Layers of the NCSN++ / DDPM++ score networks (Song et al. 2021, App. H), NHWC.

Each block mirrors one class of score_sde_pytorch's `layers.py` / `layerspp.py`
(commit cb1f359f) and names its sub-modules like the torch attributes
(`GroupNorm_0`, `Conv_0`, `Dense_0`, `NIN_0`, ...) so that converted state dicts map
by name. Generic helpers used by other architectures too: `default_init`,
`get_timestep_embedding`, `conv3x3`, `conv1x1`, `NIN`, `ACTIVATIONS`.

Every block takes `dtype`, the dtype of its activations and arithmetic (mixed
precision, `config.model.dtype`; see `scorejax.models.precision`). Parameters are
always stored in float32 and cast where used; GroupNorm statistics and attention
softmax run in float32 whatever `dtype` is. With float32 (the default) every
block computes exactly what it did before `dtype` existed.

Conventions that differ from flax defaults and are needed for exact parity:
* convolutions take explicit symmetric padding (torch `padding=1`), not 'SAME';
* GroupNorm uses min(C // 4, 32) groups and eps 1e-6 (`group_norm`);
* initializers follow DDPM's `variance_scaling(scale, 'fan_avg', 'uniform')`,
  where scale 0 means 1e-10 (the "zero-initialised" last layers).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from scorejax.models import up_or_down_sampling as updown

Array = jax.Array

# config.model.nonlinearity -> activation (score_sde's get_act).
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "elu": nn.elu,
    "relu": nn.relu,
    "lrelu": lambda x: nn.leaky_relu(x, negative_slope=0.2),
    "swish": nn.swish,
}


def get_act(name: str) -> Callable[[Array], Array]:
  """The activation named `name` (case-insensitive); fails listing the valid names."""
  key = name.lower()
  if key not in ACTIVATIONS:
    raise ValueError(f"nonlinearity {name!r} is not one of {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[key]


def per_channel(v: Array, x: Array) -> Array:
  """A (C,) parameter shaped (1, ..., 1, C) to broadcast over x's leading axes explicitly."""
  return v.reshape((1,) * (x.ndim - v.ndim) + v.shape)


def default_init(scale: float = 1.0) -> nn.initializers.Initializer:
  """DDPM's initializer: variance scaling, fan_avg, uniform; scale 0 means 1e-10.

  For a conv kernel (kh, kw, in, out) or dense/NIN kernel (in, out) the fans are
  in * kh * kw and out * kh * kw, as in Ho et al. (2020) and score_sde.
  """
  scale = 1e-10 if scale == 0 else scale
  return nn.initializers.variance_scaling(scale, "fan_avg", "uniform")


def get_timestep_embedding(timesteps: Array, embedding_dim: int,
                           max_positions: int = 10000) -> Array:
  """Sinusoidal embedding of (B,) timesteps -> (B, embedding_dim), [sin, cos] halves.

  Transformer positional encoding as used by DDPM (Ho et al. 2020, App. B):
  frequencies exp(-log(max_positions) * i / (half_dim - 1)), i < half_dim; an odd
  `embedding_dim` is zero-padded by one column.
  """
  assert timesteps.ndim == 1
  half_dim = embedding_dim // 2
  scale = math.log(max_positions) / (half_dim - 1)
  freqs = jnp.exp(jnp.arange(half_dim, dtype=jnp.float32) * -scale)
  emb = timesteps.astype(jnp.float32)[:, None] * freqs[None, :]
  emb = jnp.concatenate([jnp.sin(emb), jnp.cos(emb)], axis=1)
  if embedding_dim % 2 == 1:
    emb = jnp.pad(emb, ((0, 0), (0, 1)))
  return emb


def conv3x3(features: int, stride: int = 1, init_scale: float = 1.0, padding: int = 1,
            use_bias: bool = True, dilation: int = 1, name: Optional[str] = None,
            dtype: Any = jnp.float32) -> nn.Conv:
  """3x3 convolution with DDPM init and explicit symmetric padding (torch semantics)."""
  return nn.Conv(features, kernel_size=(3, 3), strides=(stride, stride),
                 padding=((padding, padding), (padding, padding)),
                 kernel_dilation=(dilation, dilation), use_bias=use_bias,
                 kernel_init=default_init(init_scale), bias_init=nn.initializers.zeros,
                 dtype=dtype, name=name)


def conv1x1(features: int, stride: int = 1, init_scale: float = 1.0, use_bias: bool = True,
            name: Optional[str] = None, dtype: Any = jnp.float32) -> nn.Conv:
  """1x1 convolution with DDPM init."""
  return nn.Conv(features, kernel_size=(1, 1), strides=(stride, stride), padding="VALID",
                 use_bias=use_bias, kernel_init=default_init(init_scale),
                 bias_init=nn.initializers.zeros, dtype=dtype, name=name)


def group_norm(num_channels: int, name: Optional[str] = None,
               dtype: Any = jnp.float32) -> nn.GroupNorm:
  """NCSN++'s GroupNorm: min(C // 4, 32) groups, eps 1e-6, affine; statistics in float32,
  the result in `dtype`."""
  return nn.GroupNorm(num_groups=min(num_channels // 4, 32), epsilon=1e-6,
                      use_fast_variance=False, dtype=dtype, name=name)


def softmax_f32(logits: Array, axis: int = -1) -> Array:
  """softmax computed in float32 (whatever the logits' dtype), returned in their dtype."""
  return jax.nn.softmax(logits.astype(jnp.float32), axis=axis).astype(logits.dtype)


class NIN(nn.Module):
  """Network-in-network: a per-pixel linear map over channels, y = x W + b.

  `W` is stored (in, out), exactly as score_sde stores it (no transpose on import).
  """
  num_units: int
  init_scale: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    w = self.param("W", default_init(self.init_scale), (x.shape[-1], self.num_units))
    b = self.param("b", nn.initializers.zeros, (self.num_units,))
    y = jnp.einsum("...c,cd->...d", x.astype(self.dtype), w.astype(self.dtype))
    return y + per_channel(b.astype(self.dtype), y)


class ClassEmbedding(nn.Module):
  """A learned class-label embedding added to the time embedding (Ho & Salimans 2022, Sec. 3).

  `num_classes` real classes plus one null class, index `num_classes`, which every
  label outside [0, num_classes) selects (the convention here: -1 = "no label"),
  so one network is both the conditional and the unconditional model of
  classifier-free guidance. The table starts at zero: an untrained embedding leaves
  the unconditional network unchanged.
  """
  num_classes: int
  features: int

  @nn.compact
  def __call__(self, class_labels: Array) -> Array:
    class_labels = jnp.asarray(class_labels, jnp.int32)
    valid = (class_labels >= 0) & (class_labels < self.num_classes)
    index = jnp.where(valid, class_labels, self.num_classes)
    return nn.Embed(self.num_classes + 1, self.features, embedding_init=nn.initializers.zeros,
                    name="label_embedding")(index)


def add_class_embedding(temb: Array, class_labels: Array | None, num_classes: int) -> Array:
  """`temb` (B, F) plus the embedding of `class_labels` (B,) (None: the null class, unconditional).

  With `num_classes == 0` (an unconditional network) `temb` is returned as it is and
  no parameter is created, so unconditional networks keep score_sde's parameters.
  """
  if num_classes <= 0:
    if class_labels is not None:
      raise ValueError("class labels given to a network built with num_classes = 0; set "
                       "config.model.num_classes to the number of classes")
    return temb
  if class_labels is None:
    class_labels = jnp.full((temb.shape[0],), -1, jnp.int32)
  if class_labels.shape != (temb.shape[0],):
    raise ValueError(f"class_labels shape {class_labels.shape} != (batch,) = ({temb.shape[0]},)")
  return temb + ClassEmbedding(num_classes, temb.shape[-1], name="class_embedding")(class_labels)


class GaussianFourierProjection(nn.Module):
  """Random Fourier features of a scalar (Tancik et al. 2020; Song et al. 2021, App. H).

  emb(s) = [sin(2 pi s W), cos(2 pi s W)], W ~ N(0, scale^2) of size `embedding_size`.
  W is fixed in the paper (requires_grad=False in torch). It is stored in params
  under 'W' (so converted checkpoints and parameter counts match the reference)
  behind a stop_gradient, so its gradient is zero and Adam leaves it unchanged.
  """
  embedding_size: int = 256
  scale: float = 1.0

  @nn.compact
  def __call__(self, s: Array) -> Array:
    w = self.param("W", lambda key, shape: jax.random.normal(key, shape) * self.scale,
                   (self.embedding_size,))
    # Same operation order as the reference (s * W * 2 * pi) for float32 parity.
    proj = s[:, None] * jax.lax.stop_gradient(w)[None, :] * 2 * np.pi
    return jnp.concatenate([jnp.sin(proj), jnp.cos(proj)], axis=-1)


class Combine(nn.Module):
  """Combines the input pyramid x into the feature map y: cat([conv1x1(x), y]) or sum."""
  features: int
  method: str = "cat"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, y: Array) -> Array:
    h = conv1x1(self.features, name="Conv_0", dtype=self.dtype)(x)
    if self.method == "cat":
      return jnp.concatenate([h, y], axis=-1)
    if self.method == "sum":
      return h + y
    raise ValueError(f"combine method {self.method!r} is not one of ['cat', 'sum']")


class AttnBlockpp(nn.Module):
  """Spatial self-attention over all H*W positions (DDPM's AttnBlock, NCSN++ variant).

  h = x + NIN_3(softmax(q k^T / sqrt(C)) v), q, k, v = NIN(GroupNorm(x)); divided by
  sqrt(2) when `skip_rescale`.
  """
  skip_rescale: bool = False
  init_scale: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    b, height, width, c = x.shape
    h = group_norm(c, name="GroupNorm_0", dtype=self.dtype)(x)
    q = NIN(c, name="NIN_0", dtype=self.dtype)(h)
    k = NIN(c, name="NIN_1", dtype=self.dtype)(h)
    v = NIN(c, name="NIN_2", dtype=self.dtype)(h)
    w = jnp.einsum("bhwc,bijc->bhwij", q, k) * (int(c) ** (-0.5))
    w = softmax_f32(w.reshape(b, height, width, height * width), axis=-1)
    w = w.reshape(b, height, width, height, width)
    h = jnp.einsum("bhwij,bijc->bhwc", w, v)
    h = NIN(c, init_scale=self.init_scale, name="NIN_3", dtype=self.dtype)(h)
    if self.skip_rescale:
      return (x + h) / math.sqrt(2.0)
    return x + h


class FIRConv2d(nn.Module):
  """Conv2d with fused FIR up/down-sampling (StyleGAN2), torch name `Conv2d`.

  Params 'kernel' (k, k, in, out) HWIO and 'bias'. up: transposed conv + FIR;
  down: FIR + strided conv; neither: plain conv with padding k // 2.
  """
  features: int
  kernel: int = 3
  up: bool = False
  down: bool = False
  resample_kernel: Sequence[int] = (1, 3, 3, 1)
  use_bias: bool = True
  init_scale: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    assert not (self.up and self.down)
    assert self.kernel >= 1 and self.kernel % 2 == 1
    w = self.param("kernel", default_init(self.init_scale),
                   (self.kernel, self.kernel, x.shape[-1], self.features)).astype(self.dtype)
    x = x.astype(self.dtype)
    if self.up:
      x = updown.upsample_conv_2d(x, w, k=self.resample_kernel)
    elif self.down:
      x = updown.conv_downsample_2d(x, w, k=self.resample_kernel)
    else:
      p = self.kernel // 2
      x = jax.lax.conv_general_dilated(x, w, (1, 1), [(p, p), (p, p)],
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      x = x + per_channel(self.param("bias", nn.initializers.zeros,
                                     (self.features,)).astype(self.dtype), x)
    return x


class Upsample(nn.Module):
  """x2 upsampling: nearest (+ conv3x3), or FIR (`fir`, fused with a 3x3 conv if `with_conv`)."""
  out_ch: Optional[int] = None
  with_conv: bool = False
  fir: bool = False
  fir_kernel: Sequence[int] = (1, 3, 3, 1)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    out_ch = self.out_ch or x.shape[-1]
    if not self.fir:
      h = updown.naive_upsample_2d(x, 2)
      if self.with_conv:
        h = conv3x3(out_ch, name="Conv_0", dtype=self.dtype)(h)
    elif not self.with_conv:
      h = updown.upsample_2d(x, self.fir_kernel, factor=2)
    else:
      h = FIRConv2d(out_ch, kernel=3, up=True, resample_kernel=self.fir_kernel,
                    dtype=self.dtype, name="Conv2d_0")(x)
    return h


class Downsample(nn.Module):
  """/2 downsampling: avg-pool or stride-2 conv3x3 (torch pads right/bottom by one),
  or FIR (`fir`, fused with a 3x3 conv if `with_conv`)."""
  out_ch: Optional[int] = None
  with_conv: bool = False
  fir: bool = False
  fir_kernel: Sequence[int] = (1, 3, 3, 1)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    out_ch = self.out_ch or x.shape[-1]
    if not self.fir:
      if self.with_conv:
        # torch: F.pad(x, (0, 1, 0, 1)) then a VALID stride-2 conv.
        conv = nn.Conv(out_ch, kernel_size=(3, 3), strides=(2, 2), padding=((0, 1), (0, 1)),
                       kernel_init=default_init(), bias_init=nn.initializers.zeros,
                       dtype=self.dtype, name="Conv_0")
        return conv(x)
      # torch pads a zero row/column before the 2x2 average pool; for even sizes
      # that padding is never read.
      return updown.naive_downsample_2d(x, 2)
    if not self.with_conv:
      return updown.downsample_2d(x, self.fir_kernel, factor=2)
    return FIRConv2d(out_ch, kernel=3, down=True, resample_kernel=self.fir_kernel,
                     dtype=self.dtype, name="Conv2d_0")(x)


class ResnetBlockDDPMpp(nn.Module):
  """DDPM's residual block (Ho et al. 2020) with optional skip rescaling by 1/sqrt(2).

  GroupNorm -> act -> conv3x3 -> + Dense(act(temb)) -> GroupNorm -> act -> dropout
  -> conv3x3 (init_scale); shortcut NIN (or conv3x3) when the channel count changes.
  """
  act: Callable[[Array], Array]
  out_ch: Optional[int] = None
  conv_shortcut: bool = False
  dropout: float = 0.1
  skip_rescale: bool = False
  init_scale: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, temb: Optional[Array] = None, train: bool = False) -> Array:
    in_ch = x.shape[-1]
    out_ch = self.out_ch or in_ch
    dt = self.dtype
    h = self.act(group_norm(in_ch, name="GroupNorm_0", dtype=dt)(x))
    h = conv3x3(out_ch, name="Conv_0", dtype=dt)(h)
    if temb is not None:
      h = h + nn.Dense(out_ch, kernel_init=default_init(), dtype=dt, name="Dense_0")(
          self.act(temb))[:, None, None, :]
    h = self.act(group_norm(out_ch, name="GroupNorm_1", dtype=dt)(h))
    h = nn.Dropout(self.dropout, name="Dropout_0")(h, deterministic=not train)
    h = conv3x3(out_ch, init_scale=self.init_scale, name="Conv_1", dtype=dt)(h)
    if in_ch != out_ch:
      if self.conv_shortcut:
        x = conv3x3(out_ch, name="Conv_2", dtype=dt)(x)
      else:
        x = NIN(out_ch, name="NIN_0", dtype=dt)(x)
    if self.skip_rescale:
      return (x + h) / math.sqrt(2.0)
    return x + h


class ResnetBlockBigGANpp(nn.Module):
  """BigGAN-style residual block (Brock et al. 2019) that can resample (NCSN++).

  Like `ResnetBlockDDPMpp`, but up/down-samples both branches after the first
  GroupNorm+act (FIR or naive), and uses a 1x1 conv shortcut whenever the shape
  changes.
  """
  act: Callable[[Array], Array]
  out_ch: Optional[int] = None
  up: bool = False
  down: bool = False
  dropout: float = 0.1
  fir: bool = False
  fir_kernel: Sequence[int] = (1, 3, 3, 1)
  skip_rescale: bool = True
  init_scale: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, temb: Optional[Array] = None, train: bool = False) -> Array:
    in_ch = x.shape[-1]
    out_ch = self.out_ch or in_ch
    dt = self.dtype
    h = self.act(group_norm(in_ch, name="GroupNorm_0", dtype=dt)(x))
    if self.up:
      if self.fir:
        h = updown.upsample_2d(h, self.fir_kernel, factor=2)
        x = updown.upsample_2d(x, self.fir_kernel, factor=2)
      else:
        h = updown.naive_upsample_2d(h, factor=2)
        x = updown.naive_upsample_2d(x, factor=2)
    elif self.down:
      if self.fir:
        h = updown.downsample_2d(h, self.fir_kernel, factor=2)
        x = updown.downsample_2d(x, self.fir_kernel, factor=2)
      else:
        h = updown.naive_downsample_2d(h, factor=2)
        x = updown.naive_downsample_2d(x, factor=2)
    h = conv3x3(out_ch, name="Conv_0", dtype=dt)(h)
    if temb is not None:
      h = h + nn.Dense(out_ch, kernel_init=default_init(), dtype=dt, name="Dense_0")(
          self.act(temb))[:, None, None, :]
    h = self.act(group_norm(out_ch, name="GroupNorm_1", dtype=dt)(h))
    h = nn.Dropout(self.dropout, name="Dropout_0")(h, deterministic=not train)
    h = conv3x3(out_ch, init_scale=self.init_scale, name="Conv_1", dtype=dt)(h)
    if in_ch != out_ch or self.up or self.down:
      x = conv1x1(out_ch, name="Conv_2", dtype=dt)(x)
    if self.skip_rescale:
      return (x + h) / math.sqrt(2.0)
    return x + h
