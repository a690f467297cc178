"""The `file.py:smoke` argument shared by every config, and the shrinks it applies.

Every experiment ends with `return smoke.apply(config, arg, shrink)`: `''` leaves the
published config as it is, `'smoke'` shrinks it with `shrink(config)` so that init +
apply take seconds on CPU (and sets one training step per dispatch, as CPUs need), and
any other argument is an error naming the valid ones.
The shrinks keep every architectural switch of the published config. The U-Net one
matches the shrink overrides of the reference fixtures in
shared/fixtures/score_sde_pytorch (except nf, which they keep at 32 too).
"""

from typing import Callable

import ml_collections

Shrink = Callable[[ml_collections.ConfigDict], None]


def apply(config: ml_collections.ConfigDict, arg: str, shrink: Shrink) -> ml_collections.ConfigDict:
  """`config` as `get_config(arg)` returns it: unchanged for '', shrunk for 'smoke'."""
  if arg == "smoke":
    shrink(config)
    if "n_jitted_steps" in config.training:
      config.training.n_jitted_steps = 1  # CPU-sized: one step per dispatch (docs/training.md)
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; valid: '' or 'smoke'")
  return config


def shrink_unet(config: ml_collections.ConfigDict) -> None:
  """A 16x16 U-Net: nf 32 (GroupNorm's 32 groups need multiples of 32), ch_mult (1, 2, 2),
  one res block per level, attention at 8x8 (where (16,) sits at 32 px)."""
  config.data.image_size = 16
  config.model.nf = 32
  config.model.ch_mult = (1, 2, 2)
  config.model.num_res_blocks = 1
  config.model.attn_resolutions = (8,)


def shrink_ncsnpp(config: ml_collections.ConfigDict) -> None:
  """The NCSN++/DDPM++ configs' smoke size: `shrink_unet` with batches of 8."""
  shrink_unet(config)
  config.training.batch_size = 8
  config.eval.batch_size = 8


def shrink_ncsnv2(config: ml_collections.ConfigDict) -> None:
  """16 px, nf 16. NCSNv2's RefineNet layout is fixed by `model.name`: it has no
  `ch_mult`, `num_res_blocks` or `attn_resolutions` to shrink."""
  config.data.image_size = 16
  config.model.nf = 16
