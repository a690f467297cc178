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

from configs import default_lsun


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = default_lsun.get_default_configs()

  training = config.training
  training.batch_size = 128              # NCSNv2 bedroom: 128 (the LSUN default is 64)
  training.sde = "vesde"
  training.continuous = False            # SMLD's loss over the integer noise levels

  sampling = config.sampling
  sampling.method = "pc"
  sampling.predictor = "none"
  sampling.corrector = "ald"             # annealed Langevin dynamics (Song & Ermon 2019, Alg. 1)
  sampling.n_steps_each = 3
  sampling.snr = 0.095

  data = config.data
  data.category = "bedroom"
  data.image_size = 128
  data.centered = False                  # data in [0, 1]; the network applies 2x - 1

  model = config.model
  model.name = "ncsnv2_128"
  model.scale_by_sigma = True            # NCSNv2 always divides its output by sigma
  model.num_scales = 1086
  model.sigma_min = 0.01
  model.sigma_max = 190.0
  model.ema_rate = 0.9999
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
