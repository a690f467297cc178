"""`--mode=likelihood`: bits/dim of a trained score model on a dataset split, per example.

    python -m scorejax.main --mode=likelihood --config=configs/digits.py --workdir=runs/digits
    python -m scorejax.main --mode=likelihood --config=configs/vp_cifar10.py --workdir=runs/vp \
        --checkpoint=26 --split=test --divergence=hutchinson_rademacher --num_repeats=5

Two numbers per example, in the same convention: the exact bits/dim of the
probability-flow ODE model (`scorejax.likelihood.log_likelihood`) and the variational
bound of the diffusion model (`scorejax.likelihood.elbo_bits_per_dim`, Song, Durkan,
Murray & Ermon 2021, Thm. 1, estimated with `bound_n_t` times per example; 0 skips it).
Prints their means with standard errors, the mean NFE per batch and the throughput,
writes them to `WORKDIR/likelihood_<split>_step<N>.json`, and one row per example of the
split (index in dataset order, bpd ODE, bpd bound, NFE of each) to
`WORKDIR/likelihood_<split>_step<N>_examples.csv`, so that examples can be ranked or
filtered. `--mode=likelihood` evaluates every example of the split (the last, partial
batch padded and its padding dropped); batches are split over all devices (the `'data'`
mesh axis) and the per-example results gathered on every host, process 0 writing them.

Convention (score_sde's): 256-level images in [0, 1] are uniformly dequantized,
x = (x_int + u) / 256 with u ~ U[0, 1)^D drawn afresh for each of `num_repeats`
passes (keyed by the example's index, so an example's noise does not depend on its
batch), the model sees scaler(x) ([0, 1] or [-1, 1] when `data.centered`), and

    bpd = -log p(scaler(x)) / (D ln 2) + offset,  offset = 8 ([0, 1]) or 7 ([-1, 1]),

the change of variables of the scaler included (docs/conventions.md). For data that
are not 256-level images (toy sets), the offset is 0 and bpd is -log2 p / D. With
`num_repeats` > 1 an example's row holds its mean over the repeats, and the standard
errors are those of the mean over examples of these per-example means.

`evaluate_bpd(config, workdir, ...)` is the config edge; `bpd_of_state` measures a
given state on given batches (the eval loop calls it with the state it restored).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from scorejax import data
from scorejax.evaluation import progress
from scorejax.likelihood import LIKELIHOOD_EPS, bits_per_dim, dequantization_offset, log_likelihood
from scorejax.likelihood_bound import BOUND_N_T, elbo_bits_per_dim
from scorejax.training import parallel, setup
from scorejax.training.setup import Components
from scorejax.training.state import TrainState

# Columns of the per-example file, in order.
EXAMPLE_COLUMNS = ("index", "bpd_ode", "bpd_bound", "nfe_ode", "nfe_bound")


def is_image_data(data_shape) -> bool:
  return len(data_shape) == 3


def evaluate_bpd(config, workdir: str, *, step: int | None = None, untrained: bool = False,
                 split: str = "test", divergence: str = "hutchinson_rademacher",
                 num_repeats: int = 1, max_examples: int | None = None,
                 batch_size: int | None = None, rtol: float = 1e-5, atol: float = 1e-5,
                 eps: float = LIKELIHOOD_EPS, seed: int = 0,
                 bound_n_t: int = BOUND_N_T) -> dict:
  """Bits/dim of the (EMA) model saved in `workdir` on `split`; returns the results dict.

  Every example of the split (or the first `max_examples`) is evaluated: the ODE
  bits/dim and, unless `bound_n_t` is 0, the variational bound with `bound_n_t` times per
  example; the per-example rows go to `WORKDIR/likelihood_<split>_<step>_examples.csv`.
  `batch_size` defaults to config.eval.batch_size; `seed` seeds the dequantization
  noise, the divergence probes and the bound's draws (the model's initialization uses
  config.seed).
  """
  c = setup.build_components(config)
  state, step = setup.load_state(c, workdir, seed=int(config.seed),
                                 snapshot_freq=int(config.training.snapshot_freq), step=step,
                                 untrained=untrained)
  batch_size = int(batch_size or config.eval.batch_size)
  dataset = data.eval_data(config)
  return bpd_of_state(c, state, dataset.batches, workdir, step=step,
                      untrained=untrained, split=split, batch_size=batch_size,
                      divergence=divergence, num_repeats=num_repeats, max_examples=max_examples,
                      rtol=rtol, atol=atol, eps=eps, seed=seed,
                      num_batches=dataset.num_batches(split, batch_size, drop_remainder=False),
                      bound_n_t=bound_n_t, every_example=True)


def _dequantize(key: jax.Array, x01: jax.Array, index: jax.Array) -> jax.Array:
  """(x_int + u) / 256 with u ~ U[0, 1)^D keyed by each example's index."""
  # Padding rows carry index -1: any valid key will do, their results are dropped.
  u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, jnp.maximum(i, 0)),
                                            x01.shape[1:]))(index)
  return (jnp.round(x01 * 255.0) + u) / 256.0


def bpd_of_state(c: Components, state: TrainState,
                 batches: Callable[..., Iterator[np.ndarray]], workdir: str, *, step: int,
                 untrained: bool = False, split: str = "test", batch_size: int,
                 divergence: str = "hutchinson_rademacher", num_repeats: int = 1,
                 max_examples: int | None = None, rtol: float = 1e-5, atol: float = 1e-5,
                 eps: float = LIKELIHOOD_EPS, seed: int = 0, num_batches: int | None = None,
                 bound_n_t: int = 0, every_example: bool = False) -> dict:
  """Bits/dim of `state`'s EMA model on `num_repeats` passes over `split`; returns the results.

  `batches(split, batch_size)` is one ordered pass over a split (`data.EvalData.batches`),
  of `num_batches` batches if known (the progress bar's total, for its ETA); with
  `every_example` it is called with `drop_remainder=False` and the last, partial batch is
  padded (the padding is evaluated and dropped). Each global batch is split over all
  devices; a batch size that the device count does not divide is padded the same way.
  `bound_n_t` > 0 also estimates the variational bound with that many times per
  example. `step` / `untrained` label the state. The results are also written to
  `workdir/likelihood_<split>_step<step>.json` (`_untrained.json`), and the per-example
  rows to the `_examples.csv` next to it. A progress bar (process 0, stderr) counts the
  batches, with the NFE and the running bits/dim.
  """
  images = is_image_data(c.data_shape)
  offset = dequantization_offset(2.0 if c.centered else 1.0) if images else 0.0
  bound_n_t = int(bound_n_t)
  mesh = parallel.data_mesh()
  n_dev, n_proc = mesh.devices.size, jax.process_count()
  padded = -(-batch_size // n_dev) * n_dev          # global batch, divisible by the devices
  if batch_size % n_proc or padded % n_proc:
    raise ValueError(f"batch_size={batch_size} must be divisible by the number of processes "
                     f"({n_proc})")
  local_padded = padded // n_proc
  local_positions = data.process_positions(batch_size, jax.process_index(), n_proc)
  rep, sharded = parallel.replicated(mesh), parallel.batch_sharded(mesh)

  def bpd_fn(st, x01, index, valid, key):
    k_noise, k_probe, k_bound = jax.random.split(key, 3)
    if images:  # uniform dequantization of 256-level data: (x_int + u) / 256
      x01 = _dequantize(k_noise, x01, index)
    x = c.scaler(x01)
    score_fn = setup.ema_score_fn(c, st)
    logp, _, nfe = log_likelihood(k_probe, c.sde, score_fn, x, rtol=rtol,
                                  atol=atol, eps=eps, divergence=divergence)
    ode = bits_per_dim(logp, c.data_shape, offset=offset)
    if bound_n_t:
      bound = elbo_bits_per_dim(k_bound, c.sde, score_fn, x, n_t=bound_n_t, offset=offset, eps=eps)
    else:
      bound = jnp.full_like(ode, jnp.nan)
    return ode, bound, nfe, index, valid  # all replicated: every host sees the whole batch

  bpd_fn = jax.jit(bpd_fn, in_shardings=(rep, sharded, sharded, sharded, rep), out_shardings=rep)

  base_key = jax.random.key(seed)
  per_pass = num_batches
  if max_examples is not None:
    needed = -(-int(max_examples) // batch_size)
    per_pass = needed if per_pass is None else min(per_pass, needed)
  pbar = progress.bar(desc=f"bits/dim ({split})", unit="batch",
                      total=None if per_pass is None else num_repeats * per_pass)
  # index -> [sum of bpd ODE, sum of bpd bound, sum of NFE, count] over the repeats
  rows: dict[int, list[float]] = {}
  nfes, start = [], time.perf_counter()
  pass_kwargs = {"drop_remainder": False} if every_example else {}
  try:
    for r in range(num_repeats):
      key_r = jax.random.fold_in(base_key, r)
      for b, batch in enumerate(batches(split, batch_size, **pass_kwargs)):
        if max_examples is not None and b * batch_size >= max_examples:
          break
        batch = np.asarray(batch, np.float32)
        index = b * batch_size + local_positions[: batch.shape[0]]
        valid = np.ones(local_padded, bool)
        valid[batch.shape[0]:] = False
        if max_examples is not None:
          valid[: batch.shape[0]] &= index < max_examples
        fill = local_padded - batch.shape[0]   # pad with copies of an example (or zeros)
        pad = batch[:1] if batch.shape[0] else np.zeros((1, *c.data_shape), np.float32)
        batch = np.concatenate([batch, np.repeat(pad, fill, axis=0)]) if fill else batch
        index = np.concatenate([index, np.full(fill, -1)]).astype(np.int32)
        out = bpd_fn(state, *(parallel.global_batch(v, mesh) for v in (batch, index, valid)),
                     jax.random.fold_in(key_r, b))
        ode, bound, nfe, idx_all, ok_all = (np.asarray(v) for v in out)
        nfes.append(int(nfe))
        for i, o, bd in zip(idx_all[ok_all], ode[ok_all], bound[ok_all]):
          row = rows.setdefault(int(i), [0.0, 0.0, 0.0, 0])
          row[0] += float(o)
          row[1] += float(bd)
          row[2] += float(nfe)
          row[3] += 1
        pbar.set_postfix(nfe=nfes[-1], bpd=f"{np.mean([v[0] / v[3] for v in rows.values()]):.4f}",
                         refresh=False)
        pbar.update(1)
  finally:
    pbar.close()
  seconds = time.perf_counter() - start
  order = sorted(rows)
  per_example = {name: np.array([rows[i][k] / rows[i][3] for i in order])
                 for k, name in enumerate(("bpd_ode", "bpd_bound", "nfe_ode"))}
  values = per_example["bpd_ode"]
  if not np.all(np.isfinite(values)):
    raise FloatingPointError(f"{np.sum(~np.isfinite(values))} of {values.size} likelihood solves failed "
                             "(NaN); loosen --rtol/--atol or check the model")

  def mean_and_stderr(v: np.ndarray) -> tuple[float, float]:
    se = float(np.std(v, ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")
    return float(np.mean(v)), se

  bpd_mean, bpd_se = mean_and_stderr(values)
  result = {
      "step": step, "untrained": untrained, "split": split, "divergence": divergence,
      "num_examples": int(values.size), "num_repeats": num_repeats,
      "bpd": bpd_mean, "bpd_stderr": bpd_se,
      "nfe_mean": float(np.mean(nfes)), "examples_per_second": float(values.size * num_repeats / seconds),
      "offset": offset, "rtol": rtol, "atol": atol, "eps": eps, "bound_n_t": bound_n_t,
  }
  if bound_n_t:
    bound = per_example["bpd_bound"]
    result["bound_bpd"], result["bound_bpd_stderr"] = mean_and_stderr(bound)
    # paired: the same dequantized examples
    result["bound_minus_ode_bpd"], result["bound_minus_ode_bpd_stderr"] = mean_and_stderr(bound - values)
    result["bound_nfe"] = bound_n_t + 1
  name = f"likelihood_{split}_{'untrained' if untrained else f'step{step}'}"
  if every_example:
    result["examples_file"] = os.path.join(workdir, f"{name}_examples.csv")
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, f"{name}.json"), "w") as f:
      json.dump(result, f, indent=2)
    if every_example:
      _write_examples(result["examples_file"], order, per_example, bound_n_t + 1 if bound_n_t else 0)
  return result


def _write_examples(path: str, order: list[int], per_example: dict, nfe_bound: int) -> None:
  """One CSV row per example: `EXAMPLE_COLUMNS` (bpd_bound empty where not computed)."""
  tmp = path + ".tmp"
  with open(tmp, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(EXAMPLE_COLUMNS)
    for k, i in enumerate(order):
      bound = per_example["bpd_bound"][k]
      w.writerow([i, f"{per_example['bpd_ode'][k]:.6f}",
                  f"{bound:.6f}" if np.isfinite(bound) else "",
                  f"{per_example['nfe_ode'][k]:.0f}", nfe_bound])
  os.replace(tmp, path)
