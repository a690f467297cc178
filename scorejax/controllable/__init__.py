"""Controllable generation with an unconditional score (issue: controllable generation).

    x, nfe = inpaint(key, sde, score_fn, y, mask)            # x = y where mask = 1
    x, nfe = colorize(key, sde, score_fn, gray)              # channel mean of x = gray
    score_fn_y = classifier_guided_score(score_fn, log_prob_fn, labels)
    score_fn_y = classifier_free_guided_score(cond_score_fn, labels, scale)
    z, nfe = encode(sde, score_fn, x);  x, nfe = decode(sde, score_fn, z)
    xs = interpolate(sde, score_fn, x_a, x_b, n)

Modules: `inpaint` (the methods and their measured agreement and cost), `replacement`
(samplers that impose a known part), `guidance` (conditional scores: classifier,
classifier-free, reconstruction), `colorize` (the decoupled colour space),
`flow_encoder` (the probability-flow ODE as encoder, decoder and interpolator).
Guided scores are plain `score_fn(x, t)`: every sampler of `scorejax.sampling` takes them.
"""

from scorejax.controllable.colorize import colorize
from scorejax.controllable.flow_encoder import decode, encode, interpolate
from scorejax.controllable.guidance import classifier_free_guided_score, classifier_guided_score
from scorejax.controllable.inpaint import DEFAULT_INPAINT_METHOD, INPAINT_METHODS, inpaint

__all__ = ["inpaint", "INPAINT_METHODS", "DEFAULT_INPAINT_METHOD", "colorize", "classifier_guided_score",
           "classifier_free_guided_score", "encode", "decode", "interpolate"]
