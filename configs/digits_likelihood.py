"""The digits quick start (`digits.py`) trained by maximum likelihood (ScoreFlow: Song,
Durkan, Murray & Ermon 2021): likelihood weighting lambda(t) = g(t)^2 (their Thm. 1) and
importance sampling of t ∝ g(t)^2 / sigma(t)^2 (their Sec. 5). Everything else, the
network and the 2000-step budget included, is `digits.py`'s.

Command:
  python -m scorejax.main --config=configs/digits_likelihood.py --workdir=runs/digits_mle
  python -m scorejax.main --config=configs/digits_likelihood.py --workdir=runs/digits_mle \
      --mode=likelihood

Expected (tests/test_likelihood_training.py, at step 1000 on 128 test digits): the
variational bound drops from 3.47 (digits.py) to 2.59 bits/dim. The probability-flow ODE's
bits/dim needs a tight tolerance for this model (at rtol = 1e-3 its solve is inaccurate) and
was not measured lower than digits.py's at this budget (see the test's docstring); training
on dequantized data (--config.data.uniform_dequantization=True) is the untested next step.
`configs/digits_likelihood.py:smoke` is `digits.py:smoke` with this loss.
"""

import ml_collections

from configs import digits


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = digits.get_config(arg)  # '' or 'smoke' (anything else: the error naming them)
  config.training.likelihood_weighting = True
  config.training.importance_weighting = True
  return config
