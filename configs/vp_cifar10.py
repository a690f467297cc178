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

from configs import blocks, default_cifar10, smoke


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = default_cifar10.get_config()
  config.training.sde = "vpsde"
  config.training.reduce_mean = True
  config.sampling.predictor = "euler_maruyama"
  config.sampling.corrector = "none"
  config.data.centered = True
  config.model.update(blocks.ddpmpp())
  return smoke.apply(config, arg, smoke.shrink_ncsnpp)
