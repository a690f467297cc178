"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs", Sec. 4):

    IS = exp(E_x KL(p(y|x) || p(y))),   p(y) = E_x p(y|x),

computed on `splits` equal consecutive chunks of the samples; the mean and std over
chunks are reported.

Convention (that of the original OpenAI code, TF-GAN and torch-fidelity): p(y|x) is
the softmax over **all 1008** logits of the FID Inception's classifier (the 2015-12-05
graph has 1008 outputs, 8 of them unused classes), not over the first 1000; the chunk
size is N // splits and the last N mod splits samples are dropped. Host-side numpy in
float64, via log-softmax for stability.
"""

from __future__ import annotations

import numpy as np
import scipy.special


def inception_score(logits, splits: int = 10) -> tuple[float, float]:
  """(mean, std) of the Inception Score over `splits` chunks of logits (N, C)."""
  logits = np.asarray(logits, np.float64)
  if logits.ndim != 2:
    raise ValueError(f"logits must be (N, C), got shape {logits.shape}")
  n = logits.shape[0]
  size = n // splits
  if size < 1:
    raise ValueError(f"{n} samples cannot be split into {splits} chunks")
  log_p = scipy.special.log_softmax(logits, axis=1)
  scores = []
  for k in range(splits):
    chunk = log_p[k * size:(k + 1) * size]
    log_py = scipy.special.logsumexp(chunk, axis=0) - np.log(size)  # log of the marginal
    kl = np.sum(np.exp(chunk) * (chunk - log_py), axis=1)
    scores.append(np.exp(np.mean(kl)))
  return float(np.mean(scores)), float(np.std(scores))
