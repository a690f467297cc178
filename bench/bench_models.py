"""Forward and forward+backward time of NCSN++ (VE) and DDPM++ (VP) at CIFAR-10 size.

  python bench/bench_models.py                 # full-size ve_cifar10 and vp_cifar10, batch 8
  python bench/bench_models.py --smoke         # the `:smoke` networks (seconds)
  python bench/bench_models.py --configs ve_cifar10 --batch 2 --reps 5

Prints compile time and the median time per example of `model.apply` (eval mode)
and of `jax.value_and_grad` of a mean-squared output (train mode, dropout on) on
whatever backend JAX picks (CPU unless an accelerator is present). Measures only;
asserts nothing. The full-size networks take minutes to compile on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from _timing import compile_and_time  # noqa: E402
from scorejax import models  # noqa: E402

LABELS = {"vesde": (0.05, 20.0), "vpsde": (10.0, 900.0), "subvpsde": (10.0, 900.0)}


def bench(name: str, batch: int, reps: int, smoke: bool) -> None:
  config = importlib.import_module(f"configs.{name}").get_config("smoke" if smoke else "")
  model = models.get_model(config)
  size, channels = config.data.image_size, config.data.num_channels
  key = jax.random.PRNGKey(0)
  x = jax.random.uniform(key, (batch, size, size, channels))
  lo, hi = LABELS[config.training.sde]
  labels = jnp.linspace(lo, hi, batch)
  params = jax.jit(lambda k: model.init(k, x, labels, train=False))(key)["params"]
  n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))

  forward = jax.jit(lambda p, x, y: model.apply({"params": p}, x, y, train=False))

  def loss(p, x, y, k):
    out = model.apply({"params": p}, x, y, train=True, rngs={"dropout": k})
    return jnp.mean(out ** 2)

  backward = jax.jit(jax.value_and_grad(loss))
  fwd_compile, fwd = compile_and_time(forward, params, x, labels, reps=reps)
  bwd_compile, bwd = compile_and_time(backward, params, x, labels, key, reps=reps)
  print(f"{name}{':smoke' if smoke else ''}  params={n_params:,}  batch={batch}  "
        f"{size}x{size}  backend={jax.default_backend()}")
  print(f"  forward          : {1e3 * fwd / batch:9.2f} ms/example   compile {fwd_compile:6.1f} s")
  print(f"  forward+backward : {1e3 * bwd / batch:9.2f} ms/example   compile {bwd_compile:6.1f} s")
  print(f"  backward/forward : {bwd / fwd:6.2f}x")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", nargs="+", default=["ve_cifar10", "vp_cifar10"])
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--smoke", action="store_true", help="use the shrunken `:smoke` configs")
  args = parser.parse_args()
  for name in args.configs:
    bench(name, args.batch, args.reps, args.smoke)


if __name__ == "__main__":
  main()
