"""The digits quick start (`digits.py`) trained by maximum likelihood (ScoreFlow: Song,
Durkan, Murray & Ermon 2021): likelihood weighting lambda(t) = g(t)^2 (their Thm. 1) and
importance sampling of t ∝ g(t)^2 / sigma(t)^2 (their Sec. 5). Everything else, the
network and the 1000-step budget with its cosine-decayed learning rate included, is
`digits.py`'s.

Command:
  python -m scorejax.main --config=configs/digits_likelihood.py --workdir=runs/digits_mle
  python -m scorejax.main --config=configs/digits_likelihood.py --workdir=runs/digits_mle \
      --mode=likelihood

Expected (tests/test_likelihood_training.py, at step 1000, paired on the same dequantized
test digits): ODE bits/dim (rtol = atol = 1e-5, the default) 2.45 against digits.py's 2.97
(-0.53 ± 0.06 on 8 digits), variational bound 2.59 against 3.38 (-0.80 ± 0.04). Use tight
tolerances: at rtol = 1e-3 the ODE solves of both models are inaccurate.
`configs/digits_likelihood.py:smoke` is `digits.py:smoke` with this loss.
"""

import ml_collections

from configs import digits


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = digits.get_config(arg)  # '' or 'smoke' (anything else: the error naming them)
  config.training.likelihood_weighting = True
  config.training.importance_weighting = True
  return config
