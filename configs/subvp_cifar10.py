"""DDPM++ cont. on CIFAR-10 with the sub-VP SDE (score_sde configs/subvp/cifar10_ddpmpp_continuous.py).

Same network and training settings as `vp_cifar10.py`; only the SDE differs.

Command:
  python -m scorejax.main --config=configs/subvp_cifar10.py --workdir=runs/subvp_cifar10
  python -m scorejax.main --config=configs/subvp_cifar10.py --workdir=runs/subvp_cifar10 --mode=eval

Expected (Song et al. 2021): FID 2.61, IS 9.56 with the PC sampler (Table 3);
3.05 bits/dim and FID 3.56 with the probability-flow ODE (Table 2), after 1.3M
iterations at batch 128. 61,804,419 parameters.
`configs/subvp_cifar10.py:smoke` shrinks the network so that it runs in seconds.
"""

import ml_collections

from configs import smoke, vp_cifar10


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = vp_cifar10.get_config()
  config.training.sde = "subvpsde"
  return smoke.apply(config, arg, smoke.shrink_ncsnpp)
