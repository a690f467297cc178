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

from configs import blocks, default_cifar10, smoke


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = default_cifar10.get_config()  # VE SDE, PC: reverse diffusion + Langevin
  config.model.update(blocks.ncsnpp())
  return smoke.apply(config, arg, smoke.shrink_ncsnpp)
