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

from configs import default_cifar10


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = default_cifar10.get_default_configs()

  training = config.training
  training.sde = "vesde"
  training.continuous = False            # SMLD's loss over the integer noise levels

  sampling = config.sampling
  sampling.method = "pc"
  sampling.predictor = "none"
  sampling.corrector = "ald"             # annealed Langevin dynamics (Song & Ermon 2019, Alg. 1)
  sampling.n_steps_each = 5
  sampling.snr = 0.176

  data = config.data
  data.centered = False                  # data in [0, 1]; the network applies 2x - 1

  model = config.model
  model.name = "ncsnv2_64"
  model.scale_by_sigma = True            # NCSNv2 always divides its output by sigma
  model.num_scales = 232
  model.sigma_min = 0.01
  model.sigma_max = 50.0
  model.ema_rate = 0.999
  model.normalization = "InstanceNorm++"
  model.nonlinearity = "elu"
  model.nf = 128
  model.interpolation = "bilinear"

  optim = config.optim
  optim.weight_decay = 0.0
  optim.optimizer = "Adam"
  optim.lr = 1e-4
  optim.beta1 = 0.9
  optim.amsgrad = False
  optim.eps = 1e-8
  optim.warmup = 0
  optim.grad_clip = -1.0                 # no clipping

  if arg == "smoke":
    data.image_size = 16
    model.nf = 16
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; expected '' or 'smoke'")
  return config
