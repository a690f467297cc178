"""NCSN++ cont. (deep) on CIFAR-10 with the VE SDE
(score_sde configs/ve/cifar10_ncsnpp_deep_continuous.py): 8 res blocks per level.

Command:
  python -m scorejax.main --config=configs/ve_cifar10_deep.py --workdir=runs/ve_cifar10_deep
  python -m scorejax.main --config=configs/ve_cifar10_deep.py --workdir=runs/ve_cifar10_deep --mode=eval

Expected (Song et al. 2021, Table 3): FID 2.20, IS 9.89 (the paper's best CIFAR-10
sample quality) with the PC sampler after 0.95M iterations at batch 128.
The network has 107,587,075 parameters (including the fixed Fourier W).
`configs/ve_cifar10_deep.py:smoke` shrinks it so that it runs in seconds.
"""

import ml_collections

from configs import blocks, smoke, ve_cifar10


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  return smoke.apply(blocks.deep(ve_cifar10.get_config()), arg, smoke.shrink_ncsnpp)
