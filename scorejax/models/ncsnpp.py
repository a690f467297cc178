"""NCSN++ and DDPM++ (Song et al. 2021, "Score-Based Generative Modeling through
Stochastic Differential Equations", Sec. 4.4 and App. H), in flax.linen, NHWC.

One U-Net covers both families; the switches select the variant:

* NCSN++ (VE): Gaussian Fourier embedding of log sigma, FIR [1, 3, 3, 1]
  resampling, BigGAN residual blocks, skip rescaling by 1/sqrt(2), a progressive
  'residual' input pyramid, output divided by sigma (`scale_by_sigma`).
* DDPM++ (VP / sub-VP): the same code with the sinusoidal embedding of 999 t, naive
  resampling, no pyramids, and no sigma scaling (the output predicts the noise).

Numerically equal to score_sde_pytorch's `models/ncsnpp.py` (commit cb1f359f);
`convert` loads its state dicts. Module names follow the U-Net position
(`down{level}_block{i}`, `mid_attn`, `up{level}_resample`, ...); inside blocks they
follow the torch attribute names, so `convert` is a renaming plus layout changes.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from scorejax.models import layers, precision
from scorejax.models.convert import convert_state_dict

Array = jax.Array

_PROGRESSIVE = ("none", "output_skip", "residual")
_PROGRESSIVE_INPUT = ("none", "input_skip", "residual")
_EMBEDDINGS = ("fourier", "positional")
_RESBLOCKS = ("ddpm", "biggan")
_COMBINE = ("sum", "cat")


def _check(name: str, value: str, valid: Sequence[str]) -> None:
  if value not in valid:
    raise ValueError(f"{name}={value!r} is not one of {list(valid)}")


class NCSNpp(nn.Module):
  """The NCSN++ / DDPM++ score network.

  `__call__(x, labels, train)`: x (B, H, W, C) NHWC; labels (B,) are sigma(t) for the
  Fourier embedding (VE) or the (possibly fractional) timestep 999 t for the
  positional one (VP). Dropout draws from the 'dropout' rng when `train`.

  The Fourier `W` lives in params ('fourier_proj/W'); the paper keeps it fixed, so
  an optimizer should mask it out. With `conditional=False` the residual blocks
  have no `Dense_0` here, whereas the reference builds (and never uses) one; such
  torch state dicts are not convertible (every published config is conditional).
  """
  nf: int = 128
  ch_mult: Sequence[int] = (1, 2, 2, 2)
  num_res_blocks: int = 4
  attn_resolutions: Sequence[int] = (16,)
  dropout: float = 0.1
  resamp_with_conv: bool = True
  conditional: bool = True
  fir: bool = True
  fir_kernel: Sequence[int] = (1, 3, 3, 1)
  skip_rescale: bool = True
  resblock_type: str = "biggan"        # 'biggan' | 'ddpm'
  progressive: str = "none"            # 'none' | 'output_skip' | 'residual'
  progressive_input: str = "residual"  # 'none' | 'input_skip' | 'residual'
  progressive_combine: str = "sum"     # 'sum' | 'cat' (for 'input_skip')
  attention_type: str = "ddpm"
  embedding_type: str = "fourier"      # 'fourier' | 'positional'
  fourier_scale: float = 16.0
  init_scale: float = 0.0
  scale_by_sigma: bool = True
  centered: bool = False               # data in [-1, 1] (True) or [0, 1] (False)
  num_channels: int = 3
  image_size: int = 32
  nonlinearity: str = "swish"
  # The sigma table, used only for scale_by_sigma with positional labels
  # (sigmas[int(label)], as the reference does).
  sigma_min: float = 0.01
  sigma_max: float = 50.0
  num_scales: int = 1000
  num_classes: int = 0                 # > 0: label-conditional (layers.ClassEmbedding)
  dtype: Any = jnp.float32             # activations (scorejax.models.precision); output float32

  def sigmas(self) -> np.ndarray:
    """score_sde's `get_sigmas`: N geometrically spaced sigmas from sigma_max down to sigma_min."""
    return np.exp(np.linspace(np.log(self.sigma_max), np.log(self.sigma_min), self.num_scales))

  def _validate(self) -> None:
    _check("progressive", self.progressive, _PROGRESSIVE)
    _check("progressive_input", self.progressive_input, _PROGRESSIVE_INPUT)
    _check("embedding_type", self.embedding_type, _EMBEDDINGS)
    _check("resblock_type", self.resblock_type, _RESBLOCKS)
    _check("progressive_combine", self.progressive_combine, _COMBINE)
    _check("attention_type", self.attention_type, ("ddpm",))

  def _resnet_block(self, name: str, out_ch: Optional[int] = None, up: bool = False,
                    down: bool = False) -> nn.Module:
    act = layers.get_act(self.nonlinearity)
    if self.resblock_type == "ddpm":
      assert not (up or down)
      return layers.ResnetBlockDDPMpp(act=act, out_ch=out_ch, dropout=self.dropout,
                                      init_scale=self.init_scale,
                                      skip_rescale=self.skip_rescale, dtype=self.dtype, name=name)
    return layers.ResnetBlockBigGANpp(act=act, out_ch=out_ch, up=up, down=down,
                                      dropout=self.dropout, fir=self.fir,
                                      fir_kernel=tuple(self.fir_kernel),
                                      init_scale=self.init_scale,
                                      skip_rescale=self.skip_rescale, dtype=self.dtype, name=name)

  def _attn(self, name: str) -> nn.Module:
    return layers.AttnBlockpp(skip_rescale=self.skip_rescale, init_scale=self.init_scale,
                              dtype=self.dtype, name=name)

  def _rescaled_sum(self, a: Array, b: Array) -> Array:
    return (a + b) / math.sqrt(2.0) if self.skip_rescale else a + b

  @nn.compact
  def __call__(self, x: Array, labels: Array, train: bool = False,
               class_labels: Array | None = None) -> Array:
    """`class_labels` (B,) int, for `num_classes > 0`: -1 (or None) is the null label."""
    self._validate()
    act = layers.get_act(self.nonlinearity)
    nf, num_levels = self.nf, len(self.ch_mult)
    fir_kernel = tuple(self.fir_kernel)
    channels = x.shape[-1]

    # Noise-level / time embedding (App. H: Fourier features of log sigma for VE).
    if self.embedding_type == "fourier":
      used_sigmas = labels
      temb = layers.GaussianFourierProjection(embedding_size=nf, scale=self.fourier_scale,
                                              name="fourier_proj")(jnp.log(labels))
    else:
      used_sigmas = jnp.asarray(self.sigmas(), jnp.float32)[labels.astype(jnp.int32)]
      temb = layers.get_timestep_embedding(labels, nf)
    if self.conditional:
      temb = nn.Dense(nf * 4, kernel_init=layers.default_init(), name="temb_dense_0")(temb)
      temb = nn.Dense(nf * 4, kernel_init=layers.default_init(), name="temb_dense_1")(act(temb))
      temb = layers.add_class_embedding(temb, class_labels, self.num_classes)
    else:
      if self.num_classes > 0:
        raise ValueError("config.model.num_classes > 0 needs config.model.conditional=True: the "
                         "label embedding is added to the time embedding")
      temb = None

    if not self.centered:
      x = 2 * x - 1.0  # data in [0, 1] -> [-1, 1]
    dt = self.dtype
    x = x.astype(dt)

    # Downsampling path.
    input_pyramid = x if self.progressive_input != "none" else None
    hs = [layers.conv3x3(nf, name="conv_in", dtype=dt)(x)]
    for i_level in range(num_levels):
      for i_block in range(self.num_res_blocks):
        h = self._resnet_block(f"down{i_level}_block{i_block}",
                               out_ch=nf * self.ch_mult[i_level])(hs[-1], temb, train)
        if h.shape[2] in self.attn_resolutions:
          h = self._attn(f"down{i_level}_attn{i_block}")(h)
        hs.append(h)

      if i_level != num_levels - 1:
        if self.resblock_type == "ddpm":
          h = layers.Downsample(with_conv=self.resamp_with_conv, fir=self.fir,
                                fir_kernel=fir_kernel, dtype=dt,
                                name=f"down{i_level}_resample")(hs[-1])
        else:
          h = self._resnet_block(f"down{i_level}_resample", down=True)(hs[-1], temb, train)

        if self.progressive_input == "input_skip":
          input_pyramid = layers.Downsample(with_conv=False, fir=self.fir,
                                            fir_kernel=fir_kernel, dtype=dt)(input_pyramid)
          h = layers.Combine(features=h.shape[-1], method=self.progressive_combine, dtype=dt,
                             name=f"down{i_level}_combine")(input_pyramid, h)
        elif self.progressive_input == "residual":
          input_pyramid = layers.Downsample(out_ch=h.shape[-1], with_conv=True, fir=self.fir,
                                            fir_kernel=fir_kernel, dtype=dt,
                                            name=f"down{i_level}_pyramid")(input_pyramid)
          input_pyramid = self._rescaled_sum(input_pyramid, h)
          h = input_pyramid
        hs.append(h)

    h = hs[-1]
    h = self._resnet_block("mid_block0")(h, temb, train)
    h = self._attn("mid_attn")(h)
    h = self._resnet_block("mid_block1")(h, temb, train)

    # Upsampling path.
    pyramid = None
    for i_level in reversed(range(num_levels)):
      for i_block in range(self.num_res_blocks + 1):
        h = self._resnet_block(f"up{i_level}_block{i_block}",
                               out_ch=nf * self.ch_mult[i_level])(
                                   jnp.concatenate([h, hs.pop()], axis=-1), temb, train)
      if h.shape[2] in self.attn_resolutions:
        h = self._attn(f"up{i_level}_attn")(h)

      if self.progressive != "none":
        in_ch = h.shape[-1]
        if i_level == num_levels - 1:
          pyramid = act(layers.group_norm(in_ch, name=f"up{i_level}_pyramid_norm", dtype=dt)(h))
          if self.progressive == "output_skip":
            pyramid = layers.conv3x3(channels, init_scale=self.init_scale, dtype=dt,
                                     name=f"up{i_level}_pyramid_conv")(pyramid)
          else:
            pyramid = layers.conv3x3(in_ch, name=f"up{i_level}_pyramid_conv", dtype=dt)(pyramid)
        elif self.progressive == "output_skip":
          pyramid = layers.Upsample(with_conv=False, fir=self.fir,
                                    fir_kernel=fir_kernel, dtype=dt)(pyramid)
          pyramid_h = act(layers.group_norm(in_ch, name=f"up{i_level}_pyramid_norm", dtype=dt)(h))
          pyramid_h = layers.conv3x3(channels, init_scale=self.init_scale, dtype=dt,
                                     name=f"up{i_level}_pyramid_conv")(pyramid_h)
          pyramid = pyramid + pyramid_h
        else:  # 'residual'
          pyramid = layers.Upsample(out_ch=in_ch, with_conv=True, fir=self.fir,
                                    fir_kernel=fir_kernel, dtype=dt,
                                    name=f"up{i_level}_pyramid_up")(pyramid)
          pyramid = self._rescaled_sum(pyramid, h)
          h = pyramid

      if i_level != 0:
        if self.resblock_type == "ddpm":
          h = layers.Upsample(with_conv=self.resamp_with_conv, fir=self.fir,
                              fir_kernel=fir_kernel, dtype=dt, name=f"up{i_level}_resample")(h)
        else:
          h = self._resnet_block(f"up{i_level}_resample", up=True)(h, temb, train)

    assert not hs
    if self.progressive == "output_skip":
      h = pyramid
    else:
      h = act(layers.group_norm(h.shape[-1], name="norm_out", dtype=dt)(h))
      h = layers.conv3x3(channels, init_scale=self.init_scale, name="conv_out", dtype=dt)(h)
    h = h.astype(jnp.float32)  # the score (and the loss) in float32

    if self.scale_by_sigma:
      # The network models the score times sigma (App. H, "scale_by_sigma").
      h = h / used_sigmas.reshape((x.shape[0],) + (1,) * (x.ndim - 1))
    return h


def build(config) -> NCSNpp:
  """NCSNpp from a score_sde-style config (fields of `config.model` and `config.data`)."""
  m, d = config.model, config.data
  return NCSNpp(
      nf=int(m.nf), ch_mult=tuple(int(c) for c in m.ch_mult),
      num_res_blocks=int(m.num_res_blocks),
      attn_resolutions=tuple(int(r) for r in m.attn_resolutions),
      dropout=float(m.dropout), resamp_with_conv=bool(m.resamp_with_conv),
      conditional=bool(m.conditional), fir=bool(m.fir),
      fir_kernel=tuple(int(k) for k in m.fir_kernel), skip_rescale=bool(m.skip_rescale),
      resblock_type=m.resblock_type.lower(), progressive=m.progressive.lower(),
      progressive_input=m.progressive_input.lower(),
      progressive_combine=m.progressive_combine.lower(),
      attention_type=m.get("attention_type", "ddpm").lower(),
      embedding_type=m.embedding_type.lower(), fourier_scale=float(m.fourier_scale),
      init_scale=float(m.init_scale), scale_by_sigma=bool(m.scale_by_sigma),
      centered=bool(d.centered), num_channels=int(d.num_channels),
      image_size=int(d.image_size), nonlinearity=m.get("nonlinearity", "swish").lower(),
      sigma_min=float(m.sigma_min), sigma_max=float(m.sigma_max),
      num_scales=int(m.num_scales), num_classes=int(m.get("num_classes", 0)),
      dtype=precision.compute_dtype(config))


def image_size_multiple(config) -> tuple[int, str]:
  """(k, why): the image sizes NCSN++/DDPM++ can take are the multiples of k.

  The U-Net halves the resolution len(ch_mult) - 1 times and concatenates each
  level's skips on the way up, so k = 2 ** (len(ch_mult) - 1).
  """
  ch_mult = tuple(config.model.ch_mult)
  return 2 ** (len(ch_mult) - 1), (f"the U-Net halves the resolution len(config.model.ch_mult) - 1 "
                                   f"= {len(ch_mult) - 1} time(s) (config.model.ch_mult={ch_mult})")


def torch_module_order(model: NCSNpp) -> list[str]:
  """Flax module names in the order of score_sde_pytorch's `all_modules` ModuleList.

  Parameter-free resamplers of the 'input_skip' / 'output_skip' pyramids are not
  list entries in the reference (they are plain attributes), so they have no index.
  """
  names: list[str] = []
  num_levels = len(model.ch_mult)
  resolutions = [model.image_size // 2 ** i for i in range(num_levels)]
  if model.embedding_type == "fourier":
    names.append("fourier_proj")
  if model.conditional:
    names += ["temb_dense_0", "temb_dense_1"]
  names.append("conv_in")
  for i in range(num_levels):
    for j in range(model.num_res_blocks):
      names.append(f"down{i}_block{j}")
      if resolutions[i] in model.attn_resolutions:
        names.append(f"down{i}_attn{j}")
    if i != num_levels - 1:
      names.append(f"down{i}_resample")
      if model.progressive_input == "input_skip":
        names.append(f"down{i}_combine")
      elif model.progressive_input == "residual":
        names.append(f"down{i}_pyramid")
  names += ["mid_block0", "mid_attn", "mid_block1"]
  for i in reversed(range(num_levels)):
    names += [f"up{i}_block{j}" for j in range(model.num_res_blocks + 1)]
    if resolutions[i] in model.attn_resolutions:
      names.append(f"up{i}_attn")
    if model.progressive != "none":
      if i == num_levels - 1 or model.progressive == "output_skip":
        names += [f"up{i}_pyramid_norm", f"up{i}_pyramid_conv"]
      else:
        names.append(f"up{i}_pyramid_up")
    if i != 0:
      names.append(f"up{i}_resample")
  if model.progressive != "output_skip":
    names += ["norm_out", "conv_out"]
  return names


def convert(state_dict: Mapping[str, Any], config) -> dict:
  """Flax variables {'params': ...} for `build(config)` from a score_sde_pytorch state dict.

  `state_dict` maps torch keys ('all_modules.{i}....', 'module.' already stripped)
  to arrays; 'all_modules.{i}' is the i-th name of `torch_module_order`, the rest of
  the key is kept. The `sigmas` buffer is skipped (the table is recomputed from the
  config). A missing, unexpected or wrong-shaped key raises ValueError naming it
  (`convert.convert_state_dict`).
  """
  model = build(config)
  order = torch_module_order(model)
  index = {name: i for i, name in enumerate(order)}

  def to_flax(key):
    parts = key.split(".")
    if parts[0] != "all_modules" or len(parts) < 3 or not parts[1].isdigit():
      return None
    if int(parts[1]) >= len(order):
      return None
    return (order[int(parts[1])], *parts[2:-1]), parts[-1]

  def to_torch(modules, leaf):
    if modules[0] not in index:
      return None
    return ".".join(("all_modules", str(index[modules[0]]), *modules[1:], leaf))

  return convert_state_dict(state_dict, model, config, to_flax=to_flax, to_torch=to_torch,
                            architecture=f"NCSN++ (config.model.name={config.model.name!r})")
