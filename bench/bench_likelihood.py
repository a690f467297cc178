"""Probability-flow likelihood on exact-score problems: NFE, wall time, error.

For Gaussian mixtures (2-D `imbalanced_mixture_2d`, 32-D `high_dim_mixture`) the
exact score is known for VE, VP and sub-VP, and so is the model's exact
log-density (`mixture.flow_model_log_prob`). For each SDE, tolerance and
divergence estimator this prints the number of drift evaluations, the wall time
of one jitted call (after compilation, `block_until_ready`) and the error of
log p against the exact model value (nats per point; for Hutchinson this is
dominated by the estimator's spread, so its mean (bias) and sd are shown).

    python bench/bench_likelihood.py            # 256 points, rtol=atol in {1e-3, 1e-5}
    python bench/bench_likelihood.py --quick    # 64 points, 1e-5 only, 2-D VP + 32-D VE

Measures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from scorejax.toy import mixture
from scorejax import likelihood
from scorejax import sde as sde_lib

SDES = {"ve": sde_lib.VESDE(), "vp": sde_lib.VPSDE(), "subvp": sde_lib.subVPSDE()}
EPS = 1e-5


def _mixtures():
  return {"2d": mixture.imbalanced_mixture_2d(),
          "32d": mixture.high_dim_mixture(jax.random.PRNGKey(0), dim=32)}


def _time(fn, *args, repeats: int = 3):
  out = jax.block_until_ready(fn(*args))  # compile
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t0)
  return out, best


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="shrink the benchmark")
  parser.add_argument("--n", type=int, default=None, help="points per problem")
  args = parser.parse_args()
  n = args.n or (64 if args.quick else 256)
  tols = [1e-5] if args.quick else [1e-3, 1e-5]
  cases = ([("vp", "2d"), ("ve", "32d")] if args.quick else
           [(s, m) for m in ("2d", "32d") for s in ("ve", "vp", "subvp")])
  divergences = ["exact", "hutchinson_rademacher", "hutchinson_gaussian"]
  mixtures = _mixtures()

  print(f"backend={jax.default_backend()} device={jax.devices()[0].device_kind} "
        f"points={n} eps={EPS} solver=tsit5")
  header = (f"{'sde':6s} {'D':>3s} {'tol':>6s} {'divergence':22s} {'nfe':>5s} "
            f"{'time_s':>8s} {'err_mean':>9s} {'err_sd':>8s} {'|err|_max':>9s} "
            f"{'bpd':>7s}")
  print(header)
  print("-" * len(header))
  for sde_name, mix_name in cases:
    sde, mix = SDES[sde_name], mixtures[mix_name]
    x = mix.sample(jax.random.PRNGKey(1), n)
    score_fn = mixture.marginal_score_fn(mix, sde)
    for tol in tols:
      for divergence in divergences:
        fn = jax.jit(partial(likelihood.log_likelihood, sde=sde, score_fn=score_fn,
                             rtol=tol, atol=tol, eps=EPS, divergence=divergence))
        (logp, z, nfe), seconds = _time(lambda k, x: fn(k, x=x), jax.random.PRNGKey(2), x)
        err = np.asarray(logp - mixture.flow_model_log_prob(mix, sde, x, z, EPS),
                         np.float64)
        bpd = float(jnp.mean(likelihood.bits_per_dim(logp, (mix.dim,), offset=0.0)))
        print(f"{sde_name:6s} {mix.dim:3d} {tol:6.0e} {divergence:22s} {int(nfe):5d} "
              f"{seconds:8.4f} {err.mean():9.2e} {err.std():8.2e} "
              f"{np.abs(err).max():9.2e} {bpd:7.3f}")
  print("err: log p - exact model log p (nats/point); bpd: -log2 p / D (no offset).")


if __name__ == "__main__":
  main()
