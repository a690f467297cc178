"""Problems with known answers: the Gaussian-mixture oracle, 2-D toy sets, sample distances.

`mixture`: Gaussian mixtures with exact marginals, scores and log-densities under
every SDE (the oracle samplers and likelihoods are tested against); `datasets`:
2-D toy distributions (the 'TOY2D' data); `distances`: how far samples are from a
known distribution (mixture-weight TV, sliced Wasserstein-2).
"""
