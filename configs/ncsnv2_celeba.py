"""NCSNv2 on CelebA 64x64: VE SDE, discrete SMLD training (score_sde's configs/ncsnv2/celeba.py).

Run:
    python -m scorejax.main --config=configs/ncsnv2_celeba.py --workdir=runs/ncsnv2_celeba --config.data.data_dir=DIR
    python -m scorejax.main --config=configs/ncsnv2_celeba.py --workdir=runs/ncsnv2_celeba --config.data.data_dir=DIR --mode=eval

Data: TFDS celeb_a, cropped to 140x140 and resized to 64x64 (score_sde's CelebA
preprocessing), prepared once as ArrayRecord
(`tfds build celeb_a --data_dir=DIR --file_format=array_record`).

Reproduces score_sde's NCSNv2 CelebA model (Song & Ermon 2020, CelebA 64x64): the
`ncsnv2_64` RefineNet (nf 128, InstanceNorm++, ELU) trained with the discrete SMLD
loss over L = 500 geometric noise levels from sigma_max = 90 down to sigma_min =
0.01, Adam 1e-4 without warm-up or gradient clipping, EMA 0.999, batch 128 for
1.3M iterations; samples with annealed Langevin dynamics only (corrector 'ald',
no predictor), 5 steps per noise level, snr 0.128, and a final denoising step
(score_sde's sampling.noise_removal, left at the CelebA default True). No FID is
stated here because none could be confirmed for this exact config.

`get_config("smoke")` shrinks the model (16 px, nf 16), as `ncsnv2_cifar10.py` does;
NCSNv2's layout is fixed by `model.name` (no ch_mult / num_res_blocks to shrink).
"""

import ml_collections

from configs import blocks, default_celeba, smoke


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = default_celeba.get_config()   # sigma_max 90, sigma_min 0.01
  blocks.ncsnv2(config, name="ncsnv2_64", num_scales=500, ema_rate=0.999, n_steps_each=5,
                snr=0.128)
  return smoke.apply(config, arg, smoke.shrink_ncsnv2)
