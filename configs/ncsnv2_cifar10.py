"""NCSNv2 on CIFAR-10: VE SDE, discrete SMLD training (score_sde's configs/ve/ncsnv2/cifar10.py).

Run:
    python -m scorejax.main --config=configs/ncsnv2_cifar10.py --workdir=runs/ncsnv2_cifar10
    python -m scorejax.main --config=configs/ncsnv2_cifar10.py --workdir=runs/ncsnv2_cifar10 --mode=eval

NCSNv2 (Song & Ermon 2020; `scorejax.models.ncsnv2`, the `ncsnv2_64` RefineNet with
nf 128, 29,694,083 parameters) trained with the discrete SMLD loss (Song & Ermon
2019, Eq. 5-6) over L = 232 geometric noise levels from sigma_max = 50 down to
sigma_min = 0.01 (Song & Ermon 2020, techniques 1-2), Adam 1e-4 without warm-up or
gradient clipping, EMA 0.999 (technique 5). Samples as NCSNv2 does: annealed
Langevin dynamics only (score_sde's corrector 'ald', no predictor), 5 steps per
noise level (technique 4) with snr 0.176, and a final denoising step.

Expected: Song & Ermon 2020 report FID 10.87 and Inception score 8.40 on CIFAR-10
(with denoising); Song et al. 2021 (score_sde), Table 1, show the corrector-only
sampler is far worse than PC sampling for the same network (FID ~20 with 2000
corrector steps) and that a reverse-diffusion predictor with Langevin corrector
improves it to below 4.

`get_config("smoke")` shrinks the model (16 px, nf 16) so that it builds and runs in
seconds. (NCSNv2's RefineNet layout is fixed by `model.name`; it has no `ch_mult`,
`num_res_blocks` or `attn_resolutions` to shrink.)
"""

import ml_collections

from configs import blocks, default_cifar10, smoke


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = default_cifar10.get_config()  # sigma_max 50, sigma_min 0.01
  blocks.ncsnv2(config, name="ncsnv2_64", num_scales=232, ema_rate=0.999, n_steps_each=5,
                snr=0.176)
  return smoke.apply(config, arg, smoke.shrink_ncsnv2)
