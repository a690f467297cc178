"""NCSN++ cont. on LSUN church_outdoor 256x256 with the VE SDE (score_sde configs/ncsnpp/church.py).

Command:
  python -m scorejax.main --config=configs/ve_church.py --workdir=runs/ve_church --config.data.data_dir=DIR
  python -m scorejax.main --config=configs/ve_church.py --workdir=runs/ve_church --config.data.data_dir=DIR --mode=eval

Data: TFDS lsun/church_outdoor (`config.data.category = 'church_outdoor'`), prepared once as ArrayRecord
(`tfds build lsun/church_outdoor --data_dir=DIR --file_format=array_record`).

Reproduces score_sde's 256x256 LSUN church_outdoor model (Song et al. 2021 show its
samples; no FID/IS is stated here because none could be confirmed for it): NCSN++ with 7 levels
(ch_mult 1,1,2,2,2,2,2), two res blocks per level, attention at 16x16, BigGAN
res blocks with FIR resampling, progressive growing on both ends (output_skip
and input_skip, combined by sum), no dropout, continuous VE SDE with
sigma_max = 380 and N = 2000, batch 64 for 2.4M iterations, PC sampling (reverse
diffusion + Langevin, snr 0.075).
`configs/ve_church.py:smoke` shrinks the network to 16x16 (`configs/smoke.py`) so that it
runs in seconds.
"""

import ml_collections

from configs import default_lsun, smoke


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = default_lsun.get_default_configs()
  training = config.training
  training.sde = "vesde"
  training.continuous = True

  sampling = config.sampling
  sampling.method = "pc"
  sampling.predictor = "reverse_diffusion"
  sampling.corrector = "langevin"

  data = config.data
  data.category = "church_outdoor"

  model = config.model
  model.name = "ncsnpp"
  model.sigma_max = 380.0                # church: 380 (the LSUN default is 378)
  model.scale_by_sigma = True
  model.ema_rate = 0.999
  model.normalization = "GroupNorm"
  model.nonlinearity = "swish"
  model.nf = 128
  model.ch_mult = (1, 1, 2, 2, 2, 2, 2)
  model.num_res_blocks = 2
  model.attn_resolutions = (16,)
  model.resamp_with_conv = True
  model.conditional = True
  model.fir = True
  model.fir_kernel = (1, 3, 3, 1)
  model.skip_rescale = True
  model.resblock_type = "biggan"
  model.progressive = "output_skip"
  model.progressive_input = "input_skip"
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
