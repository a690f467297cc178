"""Samplers on exact-score problems: NFE, wall time and the error they reach.

    python bench/bench_samplers.py [--quick] [--n 4096] [--ode-n 131072] [--table 1|2|all] [--sdes VE,VP]

Table 1: for the 2-D imbalanced mixture and a 48-D four-component mixture, under VE,
VP, sub-VP and cosine VP, runs the PC sampler (reverse diffusion + Langevin),
Euler–Maruyama and the probability-flow ODE sampler (Tsit5, rtol = atol = 1e-5; also
1e-3) integrated in t (the earlier sampler) and in the angle variable (the default;
`scorejax.sampling.ode_time`) with the exact score, and prints per configuration:
score evaluations per sample, wall time after compilation (jitted, blocked), the
mixture-weight total variation, the sliced Wasserstein-2 distance to fresh true
samples relative to the distance between two true sample sets (1.0 = indistinguishable),
and mean log p0(samples) - E[log p0].

Table 2 (the ODE sampler's target): `ode_sample` with its defaults (eps = 1e-3, no
denoising) in t and in the angle variable on the 48-D mixture, with --ode-n samples
drawn in chunks of 8192: NFE per chunk, and dlogp = mean log p0(samples) -
E_{x ~ p_eps}[log p0(x)], the expectation over 2^20 samples of the exact marginal at
eps, with its standard error.
Times are measured side by side in one run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

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
  parser.add_argument("--ode-n", type=int, default=None,
                      help="samples for the ODE target table (default 2^17, --quick 2^14)")
  parser.add_argument("--table", choices=("1", "2", "all"), default="all",
                      help="1: samplers on 2-D and 48-D, 2: ode_sample's target in 48-D")
  parser.add_argument("--sdes", default="VE,VP,subVP,cosVP", help="comma-separated SDE names")
  args = parser.parse_args()

  problems = {"2-D imbalanced": mixture.imbalanced_mixture_2d()}
  if not args.quick:
    problems["48-D, 4 comp."] = mixture.high_dim_mixture(jax.random.key(42), dim=48)
  n_steps = 500 if args.quick else 1000
  samplers = {
      "PC (RD + Langevin)": functools.partial(pc_sample, n_steps=n_steps),
      "Euler-Maruyama": functools.partial(pc_sample, predictor="euler_maruyama", corrector=None,
                                          n_steps=n_steps),
  }
  for tol in (1e-5, 1e-3):
    for tv in ("t", "angle"):
      samplers[f"ODE {tv} {tol:.0e}"] = functools.partial(ode_sample, rtol=tol, atol=tol,
                                                          time_variable=tv)
  sdes = {"VE": sde_lib.VESDE(), "VP": sde_lib.VPSDE(), "subVP": sde_lib.subVPSDE(),
          "cosVP": sde_lib.CosineVPSDE()}
  sdes = {name: sdes[name] for name in args.sdes.split(",")}
  if args.table in ("1", "all"):
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

  if args.table in ("2", "all"):
    ode_target(args.ode_n or (2**14 if args.quick else 2**17), sdes)


def ode_target(n: int, sdes, chunk: int = 8192, eps: float = 1e-3) -> None:
  """`ode_sample` with its defaults in ~48-D: NFE and mean log p0 against p_eps's."""
  mix = mixture.high_dim_mixture(jax.random.key(42), dim=48)
  chunk = min(chunk, n)
  print(f"\node_sample defaults (rtol = atol = 1e-5, eps = {eps}, no denoising), 48-D, "
        f"n = {n} in chunks of {chunk}")
  header = f"{'SDE':6s} {'time var':8s} {'NFE mean':>8s} {'NFE max':>7s} {'dlogp0':>8s} {'se':>6s}"
  print(header)
  print("-" * len(header))
  for sname, sde in sdes.items():
    marginal = mix.marginal(sde, eps)
    logp_true = jnp.concatenate([mix.log_prob(marginal.sample(jax.random.fold_in(jax.random.key(11), i), 2**16))
                                 for i in range(16)])
    score_fn = mixture.marginal_score_fn(mix, sde)
    for tv in ("t", "angle"):
      # "angle" is the default: called with no option but eps (whose default is eps too).
      options = {"time_variable": "t"} if tv == "t" else {}
      fn = jax.jit(functools.partial(ode_sample, sde=sde, score_fn=score_fn, shape=(chunk, mix.dim),
                                     eps=eps, **options))
      logps, nfes = [], []
      for i in range(n // chunk):
        x, nfe = fn(jax.random.fold_in(jax.random.key(3), i))
        logps.append(mix.log_prob(x))
        nfes.append(int(nfe))
      logp = jnp.concatenate(logps)
      dlogp = float(jnp.mean(logp) - jnp.mean(logp_true))
      se = float(jnp.sqrt(jnp.var(logp) / logp.size + jnp.var(logp_true) / logp_true.size))
      print(f"{sname:6s} {tv:8s} {np.mean(nfes):8.1f} {max(nfes):7d} {dlogp:+8.4f} {se:6.4f}")


if __name__ == "__main__":
  main()
