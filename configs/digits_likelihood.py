"""The digits quick start (`digits.py`) trained by maximum likelihood (ScoreFlow: Song,
Durkan, Murray & Ermon 2021): likelihood weighting lambda(t) = g(t)^2 (their Thm. 1) and
importance sampling of t ∝ g(t)^2 / sigma(t)^2 (their Sec. 5). Everything else, the
network and the 2000-step budget included, is `digits.py`'s.

Command:
  python -m scorejax.main --config=configs/digits_likelihood.py --workdir=runs/digits_mle
  python -m scorejax.main --config=configs/digits_likelihood.py --workdir=runs/digits_mle \
      --mode=likelihood --rtol=1e-3 --atol=1e-3

Expected: a lower probability-flow bits/dim on the test split than `digits.py`'s run
at the same step (tests/test_likelihood_training.py measures both, with standard
errors; the numbers are in its docstring), and the variational bound a little above
the ODE value. `configs/digits_likelihood.py:smoke` is `digits.py:smoke` with this loss.
"""

import ml_collections

from configs import digits


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = digits.get_config(arg)  # '' or 'smoke' (anything else: the error naming them)
  config.training.likelihood_weighting = True
  config.training.importance_weighting = True
  return config
