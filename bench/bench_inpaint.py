"""Inpainting methods side by side on the exact-score 48-D mixture of the tests.

The mixture is tests/test_controllable.py's (`high_dim_mixture(key 2, dim=48, 4
components)`), 1024 true samples with their first half or quarter of coordinates known.
For each SDE, method and sampler this prints:

  agree   among the examples whose exact conditional is >= 99% sure of a component,
          the fraction whose inpainted sample lies in that component (argmax of the
          mixture's responsibilities);
  calib   E[p(c_sample | y)], the exact conditional's probability of the component the
          sample landed in; exact conditional samples give sum_c p(c | y)^2 (printed as
          `exact`), a sampler that misses modes gives less;
  evals   score evaluations per sample, and VJPs (vector-Jacobian products through the
          score, for the guided methods);
  wall    seconds of one jitted call after compilation (CPU or the device at hand).

    python bench/bench_inpaint.py              # the table of docs/controllable.md
    python bench/bench_inpaint.py --quick      # VP only, no 32-particle SMC

Measures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from scorejax import sde as sde_lib
from scorejax.controllable import inpaint
from scorejax.toy import mixture

SDES = {"ve": sde_lib.VESDE(), "vp": sde_lib.VPSDE(), "subvp": sde_lib.subVPSDE()}
N = 1024


def _problem(mix, fraction):
  known = jnp.arange(mix.dim) < round(fraction * mix.dim)
  y = jnp.where(known, mix.sample(jax.random.PRNGKey(1), N), 0.0)
  return y, known


def _scores(mix, x, y, known):
  posterior = jnp.exp(mix.known_log_posterior(y, known))
  sure = posterior.max(-1) >= 0.99
  component = jnp.argmax(mix.responsibilities(x), -1)
  agree = jnp.sum((component == posterior.argmax(-1)) & sure) / jnp.sum(sure)
  calib = jnp.mean(jnp.take_along_axis(posterior, component[:, None], -1))
  exact = jnp.mean(jnp.sum(posterior**2, -1))
  return float(agree), float(calib), float(exact), float(jnp.mean(sure))


def _rows(quick):
  """(sde, fraction known, method, options, VJPs per evaluation)."""
  sdes = ["vp"] if quick else list(SDES)
  rows = []
  for s in sdes:
    rows += [(s, 0.5, "replace", {}, 0), (s, 0.25, "replace", {}, 0), (s, 0.25, "guided", {}, 1)]
  rows += [("vp", 0.5, "guided", {}, 1),
           ("vp", 0.25, "guided", {"scale": 2.0}, 1),
           ("vp", 0.25, "guided", {"corrector": None}, 1),
           ("vp", 0.25, "smc", {"n_particles": 8, "n_steps": 500}, 1),
           ("vp", 0.25, "smc", {"n_particles": 8}, 1)]
  if not quick:
    rows += [("vp", 0.25, "smc", {"n_particles": 32, "n_steps": 500}, 1)]
  for sampler, opts in [("ddim", {"eta": 1.0}), ("ddim", {}), ("euler", {})]:
    for method, vjp in [("replace", 0), ("guided", 1)]:
      rows.append(("vp", 0.25, method, dict(sampler=sampler, n_steps=50, **opts), vjp))
  return rows


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true")
  args = parser.parse_args()
  mix = mixture.high_dim_mixture(jax.random.PRNGKey(2), dim=48, num_components=4)
  print(f"{'sde':6s} {'known':5s} {'method':8s} {'options':42s} {'agree':>6s} {'calib':>6s} "
        f"{'exact':>6s} {'evals':>6s} {'VJPs':>6s} {'wall':>6s}")
  for sde_name, fraction, method, options, vjp in _rows(args.quick):
    sde = SDES[sde_name]
    y, known = _problem(mix, fraction)
    score_fn = mixture.marginal_score_fn(mix, sde)
    fn = jax.jit(lambda k: inpaint(k, sde, score_fn, y, known[None], method=method, **options))
    x, nfe = fn(jax.random.PRNGKey(2))
    x.block_until_ready()
    start = time.perf_counter()
    fn(jax.random.PRNGKey(3))[0].block_until_ready()
    wall = time.perf_counter() - start
    agree, calib, exact, _ = _scores(mix, x, y, known)
    # The few-step samplers' final Tweedie step evaluates the plain score (no VJP).
    vjps = (int(nfe) - (1 if "sampler" in options else 0)) * vjp
    print(f"{sde_name:6s} {fraction:5.2f} {method:8s} {str(options):42s} {agree:6.3f} {calib:6.3f} "
          f"{exact:6.3f} {int(nfe):6d} {vjps:6d} {wall:6.1f}", flush=True)


if __name__ == "__main__":
  main()
