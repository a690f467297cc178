"""Mixed precision for the score networks: `config.model.dtype`.

Mixed-precision training (Micikevicius et al. 2018, "Mixed Precision Training",
Sec. 3) as flax expresses it: each layer's `dtype` is the dtype of its activations
and arithmetic, while its parameters are created and stored in float32 and cast
where used. With `model.dtype = 'bfloat16'` (Kalamkar et al. 2019: bfloat16 keeps
float32's exponent range, so no loss scaling is needed):

* convolutions, dense layers, NIN and the attention's matmuls run in bfloat16 (the
  accelerators' fast matrix units);
* GroupNorm statistics, the attention softmax and the noise-level / time embedding
  (Fourier features of log sigma, whose phases bfloat16 could not resolve) stay in
  float32;
* the network's output is cast back to float32, so the score, the loss, the
  gradients (with respect to the float32 parameters), the optimizer state and the EMA
  are float32.

`'float32'` (the default) computes exactly what the networks computed before the
option existed; the score_sde_pytorch fixtures are matched in float32.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax.numpy as jnp

# config.model.dtype -> the dtype of the networks' activations.
COMPUTE_DTYPES: Mapping[str, Any] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# The architectures whose layers take a `dtype` (scorejax.models.ARCHITECTURES names).
MIXED_PRECISION_ARCHITECTURES = ("ncsnpp", "ddpm")


def compute_dtype(config) -> Any:
  """The activation dtype `config.model.dtype` names (absent: float32).

  Raises ValueError naming the field for an unknown name, or for bfloat16 with an
  architecture whose layers compute in float32 only.
  """
  name = str(config.model.get("dtype", "float32")).lower()
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"config.model.dtype={name!r} is not one of {sorted(COMPUTE_DTYPES)}")
  if name != "float32" and config.model.name not in MIXED_PRECISION_ARCHITECTURES:
    raise ValueError(f"config.model.dtype={name!r}: config.model.name={config.model.name!r} "
                     f"computes in float32 only; mixed precision is available for "
                     f"{list(MIXED_PRECISION_ARCHITECTURES)}. Set --config.model.dtype=float32")
  return COMPUTE_DTYPES[name]
