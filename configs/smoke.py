"""`shrink_for_smoke(config)`: the `:smoke` variant shared by the NCSN++/DDPM++ configs.

Keeps every architectural switch of the published config but shrinks the U-Net to
16x16 images, nf 32, ch_mult (1, 2, 2), one res block per level and attention at
8x8 (where (16,) sits at 32 px), with small batches, so that init + apply take
seconds on CPU. These are the shrink overrides of the reference fixtures in
shared/fixtures/score_sde_pytorch (except nf, which they keep at 32 too).
"""

import ml_collections


def shrink_for_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  config.data.image_size = 16
  config.model.nf = 32
  config.model.ch_mult = (1, 2, 2)
  config.model.num_res_blocks = 1
  config.model.attn_resolutions = (8,)
  config.training.batch_size = 8
  config.eval.batch_size = 8
  return config
