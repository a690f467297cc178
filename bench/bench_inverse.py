"""Inverse-problem solvers side by side against the exact posterior of a Gaussian mixture.

The prior is a 48-D, 4-component mixture (`high_dim_mixture(key 2, dim=48, separation=6)`:
test_controllable.py's with the modes twice as far apart, so that the exact posterior is
>= 99% sure of the component for ~98% of the measurements); A is a dense random (12, 48)
matrix (entries N(0, 1/48), rows of about unit norm: a quarter as many numbers as
dimensions) and y = A x + 0.05 n for N true samples x. The exact posterior is a
mixture in closed form (`GaussianMixture.linear_log_posterior`, `sample_given_linear`).
For each SDE, method and setting this prints:

  sure    the fraction of measurements whose exact posterior is >= 99% sure of a component;
  agree   among those, the fraction whose sample lies in that component (argmax of the
          prior's responsibilities);
  resid   the RMS residual sqrt(mean ||y - A x||^2 / M) in units of the noise level
          (exact posterior samples: `exact` row);
  SW2     sliced Wasserstein-2 distance between the joint sets (x, y) of the method and of
          exact posterior draws for the same y (`exact`: two exact sets, the floor);
  evals   score evaluations per sample (VJPs: dps and pigdm take one per evaluation);
  wall    seconds of the jitted call, compilation included (CPU; a loaded machine's).

    python bench/bench_inverse.py              # the table of docs/inverse.md
    python bench/bench_inverse.py --quick      # VP only, the defaults
    python bench/bench_inverse.py --sdes ve --main   # VE, the three defaults

Measures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from scorejax import sde as sde_lib
from scorejax.inverse import MatrixOperator, solve_inverse_problem
from scorejax.toy import distances, mixture

SDES = {"ve": sde_lib.VESDE(), "vp": sde_lib.VPSDE(), "subvp": sde_lib.subVPSDE()}
NOISE_STD = 0.05
M = 12
SEPARATION = 6.0  # modes ~8.5 apart in 48-D: the exact posterior is >= 99% sure for ~98% of y


def problem(n: int, seed: int = 1, **mixture_options):
  """(mixture, matrix, x_true, y): the benchmark's inverse problem with n measurements."""
  mix = jax.jit(lambda k: mixture.high_dim_mixture(k, dim=48, num_components=4,
                                                   **mixture_options))(jax.random.key(2))
  k_a, k_x, k_n = jax.random.split(jax.random.key(seed), 3)
  matrix = jax.random.normal(k_a, (M, mix.dim)) / np.sqrt(mix.dim)
  x = mix.sample(k_x, n)
  y = x @ matrix.T + NOISE_STD * jax.random.normal(k_n, (n, M))
  return mix, matrix, x, y


@jax.jit
def scores(mix, matrix, x, y, key):
  """(sure fraction, agreement, RMS residual / noise, SW2, SW2 floor)."""
  posterior = jnp.exp(mix.linear_log_posterior(y, matrix, NOISE_STD))
  sure = posterior.max(-1) >= 0.99
  component = jnp.argmax(mix.responsibilities(x), -1)
  agree = jnp.sum((component == posterior.argmax(-1)) & sure) / jnp.sum(sure)
  resid = jnp.sqrt(jnp.mean(jnp.square(y - x @ matrix.T))) / NOISE_STD
  k1, k2, k3 = jax.random.split(key, 3)
  exact1 = mix.sample_given_linear(k1, y, matrix, NOISE_STD)
  exact2 = mix.sample_given_linear(k2, y, matrix, NOISE_STD)
  joint = lambda a: jnp.concatenate([a, y], axis=-1)
  sw = distances.sliced_wasserstein2(k3, joint(x), joint(exact1))
  floor = distances.sliced_wasserstein2(k3, joint(exact2), joint(exact1))
  return jnp.mean(sure), agree, resid, sw, floor


def rows(sdes, main_only: bool):
  """(sde, method, options) in the table's order."""
  out = []
  for s in sdes:
    out += [(s, "projection", {}), (s, "dps", {}), (s, "pigdm", {})]
    if main_only:
      continue
    out += [(s, "projection", {"lam": 0.5}), (s, "projection", {"lam": 0.1}),
            (s, "projection", {"n_corrector_steps": 5}),
            (s, "dps", {"step_size": 0.1}), (s, "dps", {"step_size": 0.3}),
            (s, "dps", {"step_size": 3.0}),
            (s, "pigdm", {"corrector": "none"}), (s, "pigdm", {"scale": 2.0})]
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true", help="VP, the defaults only")
  parser.add_argument("--main", action="store_true", help="the defaults only")
  parser.add_argument("--sdes", default="ve,vp,subvp")
  parser.add_argument("--n", type=int, default=1024)
  parser.add_argument("--only", default=None, help="a method name: run only its rows")
  args = parser.parse_args()
  mix, matrix, _, y = problem(args.n, separation=SEPARATION)
  A = MatrixOperator(matrix)
  exact = mix.sample_given_linear(jax.random.key(9), y, matrix, NOISE_STD)
  sure, agree, resid, sw, floor = scores(mix, matrix, exact, y, jax.random.key(3))
  print(f"N={args.n}, sure={float(sure):.3f}; SW2 floor (two exact sets) {float(floor):.3f}")
  print("| SDE | method | options | agree | resid / sigma | SW2 | evals | wall s |")
  print("| --- | --- | --- | --- | --- | --- | --- | --- |")
  print(f"| - | exact posterior | - | {float(agree):.3f} | {float(resid):.2f} | "
        f"{float(floor):.3f} | - | - |")
  sdes = ["vp"] if args.quick else args.sdes.split(",")
  for sde_name, method, options in rows(sdes, args.quick or args.main):
    if args.only and method != args.only:
      continue
    sde = SDES[sde_name]
    score_fn = mixture.marginal_score_fn(mix, sde)
    run = jax.jit(lambda k: solve_inverse_problem(k, sde, score_fn, y, A, (args.n, mix.dim),
                                                  method=method, noise_std=NOISE_STD,
                                                  **options))
    start = time.perf_counter()
    x, nfe = run(jax.random.key(5))
    x.block_until_ready()
    wall = time.perf_counter() - start
    _, agree, resid, sw, _ = scores(mix, matrix, x, y, jax.random.key(3))
    opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
    print(f"| {sde_name} | {method} | {opts} | {float(agree):.3f} | {float(resid):.2f} | "
          f"{float(sw):.3f} | {int(nfe)} | {wall:.1f} |", flush=True)


if __name__ == "__main__":
  main()
