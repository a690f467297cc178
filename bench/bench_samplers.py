"""Samplers on exact-score problems: NFE, wall time and the error they reach.

    python bench/bench_samplers.py [--quick] [--n 4096]

For the 2-D imbalanced mixture and a 32-D four-component mixture, under VE, VP and
sub-VP, runs the PC sampler (reverse diffusion + Langevin), Euler–Maruyama and the
probability-flow ODE sampler (Tsit5, rtol = atol = 1e-5; also 1e-3) with the exact
score, and prints per configuration: score evaluations per sample, wall time after
compilation (jitted, blocked), the mixture-weight total variation, the sliced
Wasserstein-2 distance to fresh true samples relative to the distance between two
true sample sets (1.0 = indistinguishable), and mean log p0(samples) - E[log p0].
Times are measured side by side in one run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp

from scorejax.toy import distances, mixture
from scorejax import sde as sde_lib
from scorejax.sampling import ode_sample, pc_sample


def _timed(fn, key):
  out = fn(key)  # compile
  jax.block_until_ready(out)
  start = time.perf_counter()
  out = fn(jax.random.fold_in(key, 1))
  jax.block_until_ready(out)
  return out, time.perf_counter() - start


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=4096, help="samples per run")
  parser.add_argument("--quick", action="store_true", help="2-D only, N = 500 steps for PC/EM")
  args = parser.parse_args()

  problems = {"2-D imbalanced": mixture.imbalanced_mixture_2d()}
  if not args.quick:
    problems["32-D, 4 comp."] = mixture.high_dim_mixture(jax.random.key(42), dim=32)
  n_steps = 500 if args.quick else 1000
  samplers = {
      "PC (RD + Langevin)": functools.partial(pc_sample, n_steps=n_steps),
      "Euler-Maruyama": functools.partial(pc_sample, predictor="euler_maruyama", corrector=None,
                                          n_steps=n_steps),
      "ODE tsit5 1e-5": functools.partial(ode_sample, rtol=1e-5, atol=1e-5),
      "ODE tsit5 1e-3": functools.partial(ode_sample, rtol=1e-3, atol=1e-3),
  }
  sdes = {"VE": sde_lib.VESDE(), "VP": sde_lib.VPSDE(), "subVP": sde_lib.subVPSDE()}
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}; n = {args.n} samples per run")
  header = f"{'problem':16s} {'SDE':6s} {'sampler':20s} {'NFE':>6s} {'time s':>8s} {'TV(w)':>7s} {'SW2/floor':>9s} {'dlogp0':>8s}"
  print(header)
  print("-" * len(header))
  for pname, mix in problems.items():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    fresh, fresh2 = mix.sample(k1, args.n), mix.sample(k2, args.n)
    floor = float(distances.sliced_wasserstein2(k3, fresh2, fresh))
    expected_logp = float(jnp.mean(mix.log_prob(mix.sample(k3, 2**17))))
    for sname, sde in sdes.items():
      score_fn = mixture.marginal_score_fn(mix, sde)
      for name, sampler in samplers.items():
        fn = jax.jit(functools.partial(sampler, sde=sde, score_fn=score_fn, shape=(args.n, mix.dim)))
        (x, nfe), seconds = _timed(fn, jax.random.key(1))
        tv = float(distances.weights_total_variation(mix, x))
        sw = float(distances.sliced_wasserstein2(k3, x, fresh)) / floor
        dlogp = float(jnp.mean(mix.log_prob(x))) - expected_logp
        print(f"{pname:16s} {sname:6s} {name:20s} {int(nfe):6d} {seconds:8.3f} {tv:7.4f} {sw:9.3f} {dlogp:+8.3f}")


if __name__ == "__main__":
  main()
