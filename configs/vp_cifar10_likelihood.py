"""DDPM++ cont. on CIFAR-10 with the VP SDE, trained by maximum likelihood (ScoreFlow:
Song, Durkan, Murray & Ermon 2021, score_flow's `cifar10_vp_likelihood_iw`).

`vp_cifar10.py` with likelihood weighting lambda(t) = g(t)^2, which makes the DSM loss
an upper bound on the negative log-likelihood (their Thm. 1), and importance sampling
of t with density ∝ g(t)^2 / sigma(t)^2 (their Sec. 5), which makes that loss's
variance small enough to train with. Everything else is `vp_cifar10.py`'s.

Command:
  python -m scorejax.main --config=configs/vp_cifar10_likelihood.py --workdir=runs/vp_cifar10_mle
  python -m scorejax.main --config=configs/vp_cifar10_likelihood.py --workdir=runs/vp_cifar10_mle \
      --mode=likelihood --num_repeats=5

Expected (Song et al. 2021b, Table 2): lower probability-flow bits/dim than
`vp_cifar10.py` (3.16) at some cost in FID; their best CIFAR-10 model trained this way
(deep, sub-VP) reaches 2.83 bits/dim. `--mode=likelihood` reports the ODE bits/dim and
the variational bound (`scorejax.likelihood.elbo_bits_per_dim`) per example and as
means with standard errors. `configs/vp_cifar10_likelihood.py:smoke` shrinks the network.
"""

import ml_collections

from configs import smoke, vp_cifar10


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = vp_cifar10.get_config()
  config.training.likelihood_weighting = True
  config.training.importance_weighting = True
  return smoke.apply(config, arg, smoke.shrink_ncsnpp)
