"""The noise-conditional classifier p_t(y | x_t) of classifier guidance.

[SDE] Song et al. 2021, Sec. 5 and App. I.4: class-conditional sampling solves the
reverse SDE with grad log p_t(x | y) = grad log p_t(x) + grad log p_t(y | x), where
p_t(y | x_t) is a classifier trained on noised data x_t ~ p_t(x_t | x_0) (the loss:
`scorejax.losses.get_classifier_loss_fn`). score_sde's CIFAR-10 classifier is a
Wide-ResNet (Zagoruyko & Komodakis 2016) told the noise level through the same
embedding as the score network; `WideResNetClassifier` is that design:

  embed(labels) -> Dense -> act -> Dense = temb  (Fourier features of log sigma for
                                                   VE, sinusoidal of 999 t for VP)
  conv3x3(16) -> 3 groups of (depth - 4) / 6 pre-activation residual blocks of width
  16 k, 32 k, 64 k (k = widen_factor; the 2nd and 3rd groups start with stride 2),
  temb added (Dense) inside every block -> act(GroupNorm) -> mean pool -> Dense(C).

`labels` are `sde.model_labels(t, continuous=True)`, exactly what the score model of
the same SDE sees, so the classifier works with any SDE. CIFAR-10 uses WRN-28-10
(`configs/default_cifar10.py`'s `classifier` block); the offline digits a WRN-10-1
(`configs/digits.py`: 16/32/64 channels, one block per group).

`get_classifier_log_prob_fn(sde, model, variables)` gives `log_prob_fn(x, t) -> (B, C)`,
the argument of `scorejax.controllable.classifier_guided_score`.
"""

from __future__ import annotations

from typing import Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from scorejax import sde as sde_lib
from scorejax.models import layers

Array = jax.Array

EMBEDDING_TYPES = ("fourier", "positional")


class WideResNetBlock(nn.Module):
  """Pre-activation residual block with the noise embedding added after the first conv."""
  out_ch: int
  stride: int
  dropout: float
  act: Callable[[Array], Array]

  @nn.compact
  def __call__(self, x_BxHxWxC: Array, temb_BxT: Array, train: bool) -> Array:
    h = self.act(layers.group_norm(x_BxHxWxC.shape[-1])(x_BxHxWxC))
    skip = x_BxHxWxC
    if x_BxHxWxC.shape[-1] != self.out_ch or self.stride != 1:
      skip = layers.conv1x1(self.out_ch, stride=self.stride)(h)
    h = layers.conv3x3(self.out_ch, stride=self.stride)(h)
    h = h + nn.Dense(self.out_ch, kernel_init=layers.default_init())(self.act(temb_BxT))[:, None, None, :]
    h = self.act(layers.group_norm(self.out_ch)(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = layers.conv3x3(self.out_ch, init_scale=0.0)(h)
    return skip + h


class WideResNetClassifier(nn.Module):
  """Noise-conditional Wide-ResNet: logits (B, num_classes) of p_t(y | x_t).

  Attributes:
    num_classes: C.
    depth: 6 n + 4 (n residual blocks per group); 28 for WRN-28-10.
    widen_factor: k (channel widths 16 k, 32 k, 64 k).
    dropout: dropout rate inside the blocks (active when `train`).
    embedding_type: 'fourier' (labels are sigmas: Fourier features of log sigma, VE)
      or 'positional' (labels are time steps, VP / sub-VP).
    fourier_scale: std of the Fourier frequencies.
    centered: inputs already in [-1, 1]; else [0, 1] inputs are mapped there.
    nonlinearity: activation name (`layers.ACTIVATIONS`).
  """
  num_classes: int = 10
  depth: int = 28
  widen_factor: int = 10
  dropout: float = 0.0
  embedding_type: str = "fourier"
  fourier_scale: float = 16.0
  centered: bool = True
  nonlinearity: str = "swish"

  @nn.compact
  def __call__(self, x_BxHxWxC: Array, labels: Array, train: bool = False) -> Array:
    batch = x_BxHxWxC.shape[0]
    chex.assert_rank(x_BxHxWxC, 4)
    chex.assert_shape(labels, (batch,))
    if (self.depth - 4) % 6:
      raise ValueError(f"classifier.depth={self.depth} is not 6 n + 4 (e.g. 10, 16, 28)")
    n = (self.depth - 4) // 6
    act = layers.get_act(self.nonlinearity)
    nf = 16
    if self.embedding_type == "fourier":
      temb = layers.GaussianFourierProjection(embedding_size=nf * 4, scale=self.fourier_scale)(
          jnp.log(labels))
    elif self.embedding_type == "positional":
      temb = layers.get_timestep_embedding(labels, nf * 4)
    else:
      raise ValueError(f"classifier.embedding_type={self.embedding_type!r} is not one of "
                       f"{EMBEDDING_TYPES}")
    temb = nn.Dense(nf * 4, kernel_init=layers.default_init())(temb)
    temb = nn.Dense(nf * 4, kernel_init=layers.default_init())(act(temb))

    h = x_BxHxWxC if self.centered else 2.0 * x_BxHxWxC - 1.0
    h = layers.conv3x3(nf)(h)
    for group, width in enumerate((nf * self.widen_factor, 2 * nf * self.widen_factor,
                                   4 * nf * self.widen_factor)):
      for i in range(n):
        stride = 2 if (group > 0 and i == 0) else 1
        h = WideResNetBlock(width, stride, self.dropout, act)(h, temb, train)
    h = act(layers.group_norm(h.shape[-1])(h))
    logits_BxC = nn.Dense(self.num_classes)(jnp.mean(h, axis=(1, 2)))
    return logits_BxC


# config.classifier.name -> builder
CLASSIFIERS = {"wideresnet": WideResNetClassifier}


def build_classifier(config) -> nn.Module:
  """The classifier of `config.classifier` (its `name` selects from `CLASSIFIERS`).

  Fields: name, num_classes, depth, widen_factor, dropout, embedding_type ('auto':
  Fourier features of log sigma for training.sde = 'vesde', else positional),
  fourier_scale, nonlinearity; `config.data.centered` says the input range.
  """
  c = config.classifier
  name = str(c.name).lower()
  if name not in CLASSIFIERS:
    raise ValueError(f"config.classifier.name={c.name!r} is not one of {sorted(CLASSIFIERS)}")
  embedding_type = str(c.embedding_type).lower()
  if embedding_type == "auto":  # as the score networks of the SDE: VE sees sigma, VP 999 t
    embedding_type = "fourier" if str(config.training.sde).lower() == "vesde" else "positional"
  if embedding_type not in EMBEDDING_TYPES:
    raise ValueError(f"config.classifier.embedding_type={c.embedding_type!r} is not one of "
                     f"{EMBEDDING_TYPES + ('auto',)}")
  return CLASSIFIERS[name](num_classes=int(c.num_classes), depth=int(c.depth),
                           widen_factor=int(c.widen_factor), dropout=float(c.dropout),
                           embedding_type=embedding_type, fourier_scale=float(c.fourier_scale),
                           centered=bool(config.data.centered),
                           nonlinearity=str(c.get("nonlinearity", "swish")).lower())


def get_classifier_log_prob_fn(sde: sde_lib.SDE, model: nn.Module,
                               variables: dict) -> Callable[[Array, Array], Array]:
  """`log_prob_fn(x, t) -> (B, C)`: log p_t(c | x) of a trained noise-conditional classifier.

  The classifier sees `sde.model_labels(t, continuous=True)` as in training
  (`losses.get_classifier_loss_fn`); `t` is a scalar or (B,). This is the
  `log_prob_fn` of `scorejax.controllable.classifier_guided_score`.
  """
  def log_prob_fn(x: Array, t: Array) -> Array:
    t = jnp.broadcast_to(jnp.asarray(t, x.dtype), (x.shape[0],))
    logits = model.apply(variables, x, sde.model_labels(t, True), train=False)
    return jax.nn.log_softmax(logits, axis=-1)
  return log_prob_fn
