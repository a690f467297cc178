"""DDPM++ cont. (deep) on CIFAR-10 with the VP SDE
(score_sde configs/vp/cifar10_ddpmpp_deep_continuous.py): 8 res blocks per level.

Command:
  python -m scorejax.main --config=configs/vp_cifar10_deep.py --workdir=runs/vp_cifar10_deep
  python -m scorejax.main --config=configs/vp_cifar10_deep.py --workdir=runs/vp_cifar10_deep --mode=eval

Expected (Song et al. 2021): FID 2.41, IS 9.68 with the PC sampler (Table 3);
3.13 bits/dim and FID 3.08 with the probability-flow ODE (Table 2), after 0.95M
iterations at batch 128. 106,632,579 parameters.
`configs/vp_cifar10_deep.py:smoke` shrinks it so that it runs in seconds.
"""

import ml_collections

from configs import blocks, smoke, vp_cifar10


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  return smoke.apply(blocks.deep(vp_cifar10.get_config()), arg, smoke.shrink_ncsnpp)
