"""A small time-conditional MLP score network for low-dimensional data (2-D toys).

Conditioning follows score_sde's conventions for `labels` (see
`scorejax.models.score_fn.labels_and_std`), selected by `embedding_type` as in
NCSN++:

* 'fourier': labels are noise levels sigma (VE, continuous); the network embeds
  log(sigma) with random Fourier features (Tancik et al. 2020; [SDE] App. H.1,
  "Gaussian Fourier features" of NCSN++), which spreads the decades of sigma
  evenly.
* 'positional': labels are time steps (999 t for VP/sub-VP continuous, integer
  indices for the discrete SMLD/DDPM losses); the network embeds them with the
  Transformer sinusoidal embedding of DDPM (Ho et al. 2020, App. B).

With `scale_by_sigma` the output is divided by the label sigma (NCSN++'s
`scale_by_sigma`, [SDE] App. H.1; Song & Ermon 2020, technique 3), so a VE score
model only has to predict -z rather than a score whose scale spans sigma_min to
sigma_max: this is what makes VE training work.

[SDE] Song et al., "Score-Based Generative Modeling through Stochastic Differential
Equations", ICLR 2021.
"""

from __future__ import annotations

from typing import Mapping

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from scorejax.models import layers

Array = jax.Array

EMBEDDING_TYPES = ("fourier", "positional")


class MLPScore(nn.Module):
  """Residual SiLU MLP s(x, labels) for flat or flattenable data.

  `x` (B, *data_shape) is flattened to (B, D); `labels` (B,) are embedded (see the
  module docstring), passed through a 2-layer MLP and added into every block.
  Output: same shape as `x`. The last layer starts at zero, so an untrained model
  outputs 0.

  Attributes:
    nf: hidden width.
    num_layers: number of residual hidden blocks.
    embedding_type: 'fourier' (labels are sigmas; embeds log sigma) or 'positional'
      (labels are time steps).
    fourier_scale: std of the Fourier frequencies (on log sigma).
    scale_by_sigma: divide the output by the labels (only with sigma labels).
    dropout: dropout rate inside the blocks (active when `train`).
    num_classes: > 0 for a label-conditional network (`class_labels` (B,), -1 = no
      label; `layers.ClassEmbedding` added to the time embedding).
  """
  nf: int = 128
  num_layers: int = 3
  embedding_type: str = "positional"
  fourier_scale: float = 1.0
  scale_by_sigma: bool = False
  dropout: float = 0.0
  num_classes: int = 0

  @nn.compact
  def __call__(self, x: Array, labels: Array, train: bool,
               class_labels: Array | None = None) -> Array:
    batch = x.shape[0]
    chex.assert_shape(labels, (batch,))
    h_BxD = x.reshape(batch, -1)
    dim = h_BxD.shape[-1]

    if self.embedding_type == "fourier":
      temb = layers.GaussianFourierProjection(self.nf // 2, self.fourier_scale)(jnp.log(labels))
    elif self.embedding_type == "positional":
      temb = layers.get_timestep_embedding(labels, self.nf)
    else:
      raise ValueError(f"embedding_type={self.embedding_type!r} is not one of {EMBEDDING_TYPES}")
    temb_BxF = nn.Dense(self.nf)(nn.silu(nn.Dense(self.nf)(temb)))
    temb_BxF = layers.add_class_embedding(temb_BxF, class_labels, self.num_classes)

    h_BxF = nn.Dense(self.nf)(h_BxD)
    for _ in range(self.num_layers):
      r = nn.Dense(self.nf)(nn.silu(h_BxF + nn.Dense(self.nf)(nn.silu(temb_BxF))))
      r = nn.Dropout(self.dropout, deterministic=not train)(r)
      h_BxF = h_BxF + r
    out_BxD = nn.Dense(dim, kernel_init=nn.initializers.zeros)(nn.silu(h_BxF))

    if self.scale_by_sigma:
      out_BxD = out_BxD / labels[:, None]
    return out_BxD.reshape(x.shape)


def build(config) -> MLPScore:
  """`MLPScore` from `config.model` (name 'mlp').

  Fields: `nf` (hidden width, default 128), `num_layers` (3), `embedding_type`
  ('fourier' for VE continuous, else 'positional'), `fourier_scale` (1.0),
  `scale_by_sigma` (False; set True for VE), `dropout` (0.0), `num_classes` (0).
  """
  m = config.model
  embedding_type = str(m.get("embedding_type", "positional")).lower()
  if embedding_type not in EMBEDDING_TYPES:
    raise ValueError(f"config.model.embedding_type={embedding_type!r} is not one of "
                     f"{EMBEDDING_TYPES}")
  return MLPScore(nf=int(m.get("nf", 128)), num_layers=int(m.get("num_layers", 3)),
                  embedding_type=embedding_type,
                  fourier_scale=float(m.get("fourier_scale", 1.0)),
                  scale_by_sigma=bool(m.get("scale_by_sigma", False)),
                  dropout=float(m.get("dropout", 0.0)),
                  num_classes=int(m.get("num_classes", 0)))


def convert(state_dict: Mapping[str, object], config) -> dict:
  """No score_sde_pytorch checkpoint exists for this toy MLP."""
  raise NotImplementedError(
      "config.model.name='mlp' is scorejax's own toy network: score_sde_pytorch has no "
      "checkpoint for it, so there is nothing to convert. Train it with "
      "`python -m scorejax.main --config=<toy config>` instead.")
