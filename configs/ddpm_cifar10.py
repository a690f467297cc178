"""DDPM on CIFAR-10: VP SDE, discrete DDPM training (score_sde's configs/vp/ddpm/cifar10.py).

Run:
    python -m scorejax.main --config=configs/ddpm_cifar10.py --workdir=runs/ddpm_cifar10
    python -m scorejax.main --config=configs/ddpm_cifar10.py --workdir=runs/ddpm_cifar10 --mode=eval

The original DDPM U-Net (Ho et al. 2020; `scorejax.models.ddpm`, 35,218,947 parameters,
as in score_sde_pytorch) trained with the discrete DDPM loss (Ho et al. 2020, Eq. 14,
`reduce_mean`) over N = 1000 steps of the VP chain (beta 0.1/N ... 20/N), 1.3M
iterations at batch 128, EMA 0.9999. Samples with 1000 ancestral-sampling steps
(Ho et al. 2020, Alg. 2; score_sde's 'ancestral_sampling' predictor, no corrector).

Expected: Ho et al. 2020 report FID 3.17 and Inception score 9.46 on CIFAR-10
(50k samples) and NLL <= 3.75 bits/dim; Song et al. 2021 (score_sde), Table 1,
re-evaluate the same DDPM setting with ancestral sampling at FID ~3.2 and get
slightly better FIDs with reverse-diffusion + Langevin PC sampling.

`get_config("smoke")` shrinks the model (16 px, nf 32, ch_mult (1, 2, 2), one res
block per level, attention at 8 px) so that it builds and runs in seconds.
"""

import ml_collections

from configs import blocks, default_cifar10, smoke


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = default_cifar10.get_config()
  config.training.sde = "vpsde"
  config.training.continuous = False     # DDPM's discrete loss over integer timesteps
  config.training.reduce_mean = True
  config.sampling.predictor = "ancestral"  # score_sde: 'ancestral_sampling'
  config.sampling.corrector = "none"
  config.data.centered = True            # the model sees data in [-1, 1]
  config.model.update(blocks.ddpm())
  return smoke.apply(config, arg, smoke.shrink_unet)
