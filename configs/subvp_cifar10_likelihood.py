"""DDPM++ cont. on CIFAR-10 with the sub-VP SDE, trained by maximum likelihood (ScoreFlow:
Song, Durkan, Murray & Ermon 2021, score_flow's `cifar10_subvp_likelihood_iw`).

`subvp_cifar10.py` with likelihood weighting (lambda(t) = g(t)^2, their Thm. 1) and
importance sampling of t ∝ g(t)^2 / sigma(t)^2 (their Sec. 5); see
`vp_cifar10_likelihood.py`.

Command:
  python -m scorejax.main --config=configs/subvp_cifar10_likelihood.py --workdir=runs/subvp_cifar10_mle
  python -m scorejax.main --config=configs/subvp_cifar10_likelihood.py --workdir=runs/subvp_cifar10_mle \
      --mode=likelihood --num_repeats=5

Expected (Song et al. 2021b, Table 2): lower probability-flow bits/dim than
`subvp_cifar10.py` (3.05); their best CIFAR-10 model trained this way (the deep
sub-VP DDPM++) reaches 2.83 bits/dim.
`configs/subvp_cifar10_likelihood.py:smoke` shrinks the network.
"""

import ml_collections

from configs import smoke, subvp_cifar10


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = subvp_cifar10.get_config()
  config.training.likelihood_weighting = True
  config.training.importance_weighting = True
  return smoke.apply(config, arg, smoke.shrink_ncsnpp)
