"""DDPM++ cont. (deep) on CIFAR-10 with the sub-VP SDE
(score_sde configs/subvp/cifar10_ddpmpp_deep_continuous.py): 8 res blocks per level.

Command:
  python -m scorejax.main --config=configs/subvp_cifar10_deep.py --workdir=runs/subvp_cifar10_deep
  python -m scorejax.main --config=configs/subvp_cifar10_deep.py --workdir=runs/subvp_cifar10_deep --mode=eval

Expected (Song et al. 2021): 2.99 bits/dim and FID 2.92 with the probability-flow
ODE (Table 2, the paper's best CIFAR-10 likelihood); FID 2.41, IS 9.57 with the PC
sampler (Table 3), after 0.95M iterations at batch 128. 106,632,579 parameters.
`configs/subvp_cifar10_deep.py:smoke` shrinks it so that it runs in seconds.
"""

import ml_collections

from configs import blocks, smoke, subvp_cifar10


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  return smoke.apply(blocks.deep(subvp_cifar10.get_config()), arg, smoke.shrink_ncsnpp)
