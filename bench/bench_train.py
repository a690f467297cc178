"""Training-step speed against the machine's own matmul peak, compile time, loop and sampler overhead.

  python bench/bench_train.py                       # full-size ve_cifar10 and vp_cifar10, batch 8
  python bench/bench_train.py --smoke               # the `:smoke` networks (seconds)
  python bench/bench_train.py --configs digits --batch 64 --loop_steps 200
  python bench/bench_train.py --dtype bfloat16 --batch 128   # mixed precision, on a GPU

For each config, on whatever backend JAX picks (CPU unless an accelerator is present):
  * matmul peak: GFLOP/s of a square matmul in the network's compute dtype (`--dtype`,
    `config.model.dtype`), measured in this run (the ceiling the step is compared
    against; measured before each config, as the machine's state may change);
  * compile: the full training step (continuous DSM loss, backward, Adam with warm-up
    and clipping, EMA: `scorejax.training.make_train_step`) compiled cold (an empty
    persistent cache) and warm (loaded from the cache it just filled, as a rerun or
    resume does);
  * step: median seconds per step, the step's FLOPs from XLA's cost analysis, the
    achieved GFLOP/s and their ratio to the matmul peak;
  * loop (with --loop_steps n): steps/s of the real training loop
    (`scorejax.training.train_and_evaluate`: data, metrics, the divergence guard; no
    evaluation or sample grids), from the difference of two resumed runs of n and 2n
    steps (their fixed costs cancel), against the bare jitted step's rate over n steps
    dispatched back to back (`chained_seconds`: a mean, as the loop's is);
  * sampler (with --sampler_steps): per-evaluation wall time of the Euler few-step
    sampler with the network against the bare forward pass at the same batch (one
    sampler call per NFE-count of forward calls, in alternation, medians of `--reps`
    rounds): the fraction of sampling time spent outside the network.

Measures; asserts nothing. The full-size networks take minutes to compile on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from _timing import interleaved_seconds, median_seconds  # noqa: E402
from scorejax import training  # noqa: E402
from scorejax.models import precision  # noqa: E402
from scorejax.sampling import few_step_sample  # noqa: E402
from scorejax.training import setup  # noqa: E402


def matmul_peak_gflops(dtype=jnp.float32, n: int = 2048, reps: int = 5) -> float:
  """GFLOP/s of an n x n matmul in `dtype`, the best of `reps` (2 n^3 FLOPs each); n grows
  to 8192 on an accelerator, where 2048 does not fill the chip."""
  n = n if jax.default_backend() == "cpu" else 4 * n
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  f = jax.jit(lambda x, y: x @ y)
  jax.block_until_ready(f(a, a))
  best = float("inf")
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(f(a, a))
    best = min(best, time.perf_counter() - start)
  return 2 * n**3 / best / 1e9


def _flops(fn, *args) -> float:
  """FLOPs of jitted `fn` at `args` from XLA's cost analysis of its HLO lowered for the CPU
  (the same on every backend): on a GPU the compiled program's convolutions become library
  calls that the compiled program's cost analysis does not count."""
  cost = fn.trace(*args).lower(lowering_platforms=("cpu",)).cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", float("nan")))


def _compile_cold_and_warm(fn, *args) -> tuple[float, float, object]:
  """(cold, warm) compile seconds and the compiled program: compiled, then
  (in-memory caches cleared) loaded from the persistent cache that `main` points at an
  empty directory for this process, as a rerun or resume does."""
  lowered = fn.lower(*args)
  start = time.perf_counter()
  compiled = lowered.compile()
  cold = time.perf_counter() - start
  jax.clear_caches()
  start = time.perf_counter()
  fn.lower(*args).compile()
  warm = time.perf_counter() - start
  return cold, warm, compiled


def chained_seconds(step, state, x, key, n: int) -> float:
  """Mean seconds per step of `n` steps dispatched back to back, each on the state the one
  before returned, waited on once: the bare step run as the loop runs it (the same statistic,
  a mean over every step, slow ones included, and the same overlap of dispatch and compute)."""
  state, _ = step(state, x, key)
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(n):
    state, metrics = step(state, x, key)
  jax.block_until_ready((state, metrics))
  return (time.perf_counter() - start) / n


def bench_config(name: str, arg: str, batch: int | None, reps: int, loop_steps: int,
                 sampler_steps: int, dtype: str = "float32") -> dict:
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  if batch:
    config.training.batch_size = batch
  config.model.dtype = dtype
  b = int(config.training.batch_size)
  c = training.build_components(config)
  peak = matmul_peak_gflops(precision.compute_dtype(config))
  state = jax.jit(lambda k: training.init_state(c, k))(jax.random.key(0))
  n_params = sum(p.size for p in jax.tree.leaves(state.params))
  x = jax.random.uniform(jax.random.key(1), (b,) + c.data_shape)
  step = jax.jit(setup.scaled_train_step(c, float(config.model.ema_rate)))
  key = jax.random.key(2)
  cold, warm, compiled = _compile_cold_and_warm(step, state, x, key)
  flops = _flops(step, state, x, key)
  step_s = median_seconds(lambda s: compiled(s, x, key)[1], state, reps=reps)
  row = dict(config=f"{name}{':' + arg if arg else ''}", params_m=n_params / 1e6, batch=b, dtype=dtype,
             peak_gflops=peak, compile_cold_s=cold, compile_warm_s=warm, step_s=step_s,
             step_gflop=flops / 1e9, gflops=flops / 1e9 / step_s,
             of_peak=flops / 1e9 / step_s / peak)

  if loop_steps:
    workdir = tempfile.mkdtemp(prefix="bench-train-loop-")
    t = config.training
    t.eval_freq, t.snapshot_sampling, t.log_freq = 0, False, 50
    t.snapshot_freq = t.snapshot_freq_for_preemption = 10**9  # saves at the end only
    t.n_iters = 1
    if config.optim.get("lr_decay", "none") != "none":  # a decay fixed over the runs below
      config.optim.decay_steps = int(config.optim.warmup) + 3 * loop_steps + 1
    training.train_and_evaluate(config, workdir)  # compiles (or loads) and saves step 1
    # Two resumed runs of n and 2n steps share the fixed costs (restore, the final save,
    # the judging step); their difference is the cost of n steps in the loop.
    seconds = []
    for n in (loop_steps, 2 * loop_steps):
      t.n_iters += n
      start = time.perf_counter()
      training.train_and_evaluate(config, workdir)
      seconds.append(time.perf_counter() - start)
    loop_s = (seconds[1] - seconds[0]) / loop_steps
    shutil.rmtree(workdir, ignore_errors=True)
    bare_s = chained_seconds(compiled, state, x, key, loop_steps)
    row.update(loop_steps_per_s=1 / loop_s, bare_steps_per_s=1 / bare_s,
               loop_overhead=loop_s / bare_s - 1)

  if sampler_steps:
    shape = (b,) + c.data_shape
    t_mid = jnp.full((b,), 0.5)
    # t is an argument, as in the sampler's loop (a constant t would be folded into the program).
    forward = jax.jit(lambda st, y, t: training.ema_score_fn(c, st)(y, t))
    sample = jax.jit(lambda st, k: few_step_sample(
        k, c.sde, training.ema_score_fn(c, st), shape, method="euler", n_steps=sampler_steps))
    nfe = int(sample(state, key)[1])
    forward_s, sample_s = interleaved_seconds(
        (lambda: forward(state, x, t_mid), nfe), (lambda: sample(state, key)[0], 1), reps=reps)
    row.update(sampler_nfe=nfe, per_nfe_s=sample_s / nfe, forward_s=forward_s,
               sampler_outside_network=1 - forward_s * nfe / sample_s)
  return row


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", nargs="+", default=["ve_cifar10", "vp_cifar10"])
  parser.add_argument("--smoke", action="store_true", help="the configs' `:smoke` networks")
  parser.add_argument("--batch", type=int, default=8, help="0: the config's batch size")
  parser.add_argument("--dtype", default="float32", choices=sorted(precision.COMPUTE_DTYPES),
                      help="config.model.dtype: the networks' activations (mixed precision)")
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--loop_steps", type=int, default=0, help="also time the training loop")
  parser.add_argument("--sampler_steps", type=int, default=0,
                      help="also time the Euler sampler with this many steps")
  args = parser.parse_args()
  # An empty persistent cache for this process (JAX sets its cache up once): the first
  # compilation of each program is cold, the second loads it, as a rerun would.
  cache = tempfile.mkdtemp(prefix="bench-train-xla-")
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  print(f"backend={jax.default_backend()} device={jax.devices()[0].device_kind} "
        f"devices={jax.device_count()} cpus={os.cpu_count()} jax={jax.__version__}")
  for name in args.configs:
    row = bench_config(name, "smoke" if args.smoke else "", args.batch or None, args.reps,
                       args.loop_steps, args.sampler_steps, args.dtype)
    print(f"\n{row['config']}: {row['params_m']:.1f} M params, batch {row['batch']}, "
          f"{row['dtype']} activations")
    print(f"  matmul peak (in run)     {row['peak_gflops']:8.1f} GFLOP/s ({row['dtype']})")
    print(f"  compile cold / warm      {row['compile_cold_s']:8.1f} s / {row['compile_warm_s']:.1f} s")
    print(f"  train step               {row['step_s']:8.3f} s   {row['step_gflop']:.1f} GFLOP   "
          f"{row['gflops']:.1f} GFLOP/s = {100 * row['of_peak']:.0f}% of the matmul peak")
    if "loop_steps_per_s" in row:
      print(f"  loop vs bare step        {row['loop_steps_per_s']:8.2f} vs {row['bare_steps_per_s']:.2f} "
            f"steps/s (overhead {100 * row['loop_overhead']:+.1f}%)")
    if "per_nfe_s" in row:
      print(f"  sampler (euler, {row['sampler_nfe']} NFE)  {row['per_nfe_s']:8.4f} s/NFE vs forward "
            f"{row['forward_s']:.4f} s: {100 * row['sampler_outside_network']:.1f}% outside the network")
  shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
  np.set_printoptions(precision=3)
  main()
