"""NCSNv2 on LSUN bedroom 128x128: VE SDE, discrete SMLD training (score_sde's configs/ncsnv2/bedroom.py).

Run:
    python -m scorejax.main --config=configs/ncsnv2_bedroom.py --workdir=runs/ncsnv2_bedroom --config.data.data_dir=DIR
    python -m scorejax.main --config=configs/ncsnv2_bedroom.py --workdir=runs/ncsnv2_bedroom --config.data.data_dir=DIR --mode=eval

Data: TFDS lsun/bedroom, resized so that the short side is 128 and centrally
cropped (score_sde's LSUN preprocessing at 128 px), prepared once as ArrayRecord
(`tfds build lsun/bedroom --data_dir=DIR --file_format=array_record`).

Reproduces score_sde's NCSNv2 LSUN bedroom model (Song & Ermon 2020, bedroom
128x128): the `ncsnv2_128` RefineNet (nf 128, InstanceNorm++, ELU) trained with the
discrete SMLD loss over L = 1086 geometric noise levels from sigma_max = 190 down to
sigma_min = 0.01, Adam 1e-4 without warm-up or gradient clipping, EMA 0.9999, batch
128 for 2.4M iterations; samples with annealed Langevin dynamics only (corrector
'ald', no predictor), 3 steps per noise level, snr 0.095, and a final denoising step.
No FID is stated here because none could be confirmed for this exact config.

Note: score_sde's file sets `training.continuouse = False` (a typo), which leaves the
LSUN default `continuous = True` in effect there; NCSNv2 takes integer noise-level
labels, so this config sets `training.continuous = False`, as intended.

`get_config("smoke")` shrinks the model (16 px, nf 16), as `ncsnv2_cifar10.py` does;
NCSNv2's layout is fixed by `model.name` (no ch_mult / num_res_blocks to shrink).
"""

import ml_collections

from configs import blocks, default_lsun, smoke


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = default_lsun.get_config()
  blocks.ncsnv2(config, name="ncsnv2_128", num_scales=1086, ema_rate=0.9999, n_steps_each=3,
                snr=0.095)
  config.training.batch_size = 128       # the LSUN default is 64
  config.data.category = "bedroom"
  config.data.image_size = 128
  config.model.sigma_max = 190.0
  return smoke.apply(config, arg, smoke.shrink_ncsnv2)
