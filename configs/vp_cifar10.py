"""DDPM++ cont. on CIFAR-10 with the VP SDE (score_sde configs/vp/cifar10_ddpmpp_continuous.py).

DDPM++ is the NCSN++ code (`model.name = 'ncsnpp'`) with DDPM-style settings:
sinusoidal embedding of 999 t, no FIR, no pyramids, centered data, and no sigma
scaling (the network predicts the noise).

Command:
  python -m scorejax.main --config=configs/vp_cifar10.py --workdir=runs/vp_cifar10
  python -m scorejax.main --config=configs/vp_cifar10.py --workdir=runs/vp_cifar10 --mode=eval

Expected (Song et al. 2021): FID 2.55, IS 9.58 with the PC sampler (Euler-Maruyama,
no corrector; Table 3); 3.16 bits/dim and FID 3.93 with the probability-flow ODE
(Table 2), after 1.3M iterations at batch 128. 61,804,419 parameters.
`configs/vp_cifar10.py:smoke` shrinks the network so that it runs in seconds.
"""

import ml_collections

from configs import default_cifar10, smoke


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = default_cifar10.get_default_configs()
  training = config.training
  training.sde = "vpsde"
  training.continuous = True
  training.reduce_mean = True

  sampling = config.sampling
  sampling.method = "pc"
  sampling.predictor = "euler_maruyama"
  sampling.corrector = "none"

  config.data.centered = True

  model = config.model
  model.name = "ncsnpp"
  model.scale_by_sigma = False
  model.ema_rate = 0.9999
  model.normalization = "GroupNorm"
  model.nonlinearity = "swish"
  model.nf = 128
  model.ch_mult = (1, 2, 2, 2)
  model.num_res_blocks = 4
  model.attn_resolutions = (16,)
  model.resamp_with_conv = True
  model.conditional = True
  model.fir = False
  model.fir_kernel = (1, 3, 3, 1)
  model.skip_rescale = True
  model.resblock_type = "biggan"
  model.progressive = "none"
  model.progressive_input = "none"
  model.progressive_combine = "sum"
  model.attention_type = "ddpm"
  model.init_scale = 0.0
  model.embedding_type = "positional"
  model.fourier_scale = 16
  model.conv_size = 3

  if arg == "smoke":
    smoke.shrink_for_smoke(config)
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; valid: '' or 'smoke'")
  return config
