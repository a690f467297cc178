"""NCSN++ cont. on CIFAR-10 with the VE SDE (score_sde configs/ve/cifar10_ncsnpp_continuous.py).

Command:
  python -m scorejax.main --config=configs/ve_cifar10.py --workdir=runs/ve_cifar10
  python -m scorejax.main --config=configs/ve_cifar10.py --workdir=runs/ve_cifar10 --mode=eval

Expected (Song et al. 2021, Table 3): FID 2.38, IS 9.83 on 50k samples with the PC
sampler (reverse diffusion + Langevin, snr 0.16) after 1.3M iterations at batch 128.
The network has 62,758,915 parameters (including the fixed Fourier W).
`configs/ve_cifar10.py:smoke` shrinks the network so that it runs in seconds.
"""

import ml_collections

from configs import default_cifar10, smoke


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = default_cifar10.get_default_configs()
  training = config.training
  training.sde = "vesde"
  training.continuous = True

  sampling = config.sampling
  sampling.method = "pc"
  sampling.predictor = "reverse_diffusion"
  sampling.corrector = "langevin"

  model = config.model
  model.name = "ncsnpp"
  model.scale_by_sigma = True
  model.ema_rate = 0.999
  model.normalization = "GroupNorm"
  model.nonlinearity = "swish"
  model.nf = 128
  model.ch_mult = (1, 2, 2, 2)
  model.num_res_blocks = 4
  model.attn_resolutions = (16,)
  model.resamp_with_conv = True
  model.conditional = True
  model.fir = True
  model.fir_kernel = (1, 3, 3, 1)
  model.skip_rescale = True
  model.resblock_type = "biggan"
  model.progressive = "none"
  model.progressive_input = "residual"
  model.progressive_combine = "sum"
  model.attention_type = "ddpm"
  model.init_scale = 0.0
  model.embedding_type = "fourier"
  model.fourier_scale = 16
  model.conv_size = 3

  if arg == "smoke":
    smoke.shrink_for_smoke(config)
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; valid: '' or 'smoke'")
  return config
