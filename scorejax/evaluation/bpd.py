"""`--mode=likelihood`: exact bits/dim of a trained score model on a dataset split.

    python -m scorejax.main --mode=likelihood --config=configs/digits.py --workdir=runs/digits
    python -m scorejax.main --mode=likelihood --config=configs/vp_cifar10.py --workdir=runs/vp \
        --checkpoint=26 --split=test --divergence=hutchinson_rademacher --num_repeats=5

Prints the mean bits/dim with its standard error, the mean NFE per batch and the
throughput, and writes them to `WORKDIR/likelihood_<split>_step<N>.json`.

Convention (score_sde's): 256-level images in [0, 1] are uniformly dequantized,
x = (x_int + u) / 256 with u ~ U[0, 1)^D drawn afresh for each of `num_repeats`
passes, the model sees scaler(x) ([0, 1] or [-1, 1] when `data.centered`), and

    bpd = -log p(scaler(x)) / (D ln 2) + offset,  offset = 8 ([0, 1]) or 7 ([-1, 1]),

the change of variables of the scaler included (docs/conventions.md). For data that
are not 256-level images (toy sets), the offset is 0 and bpd is -log2 p / D.

`evaluate_bpd(config, workdir, ...)` is the config edge; `bpd_of_state` measures a
given state on given batches (the eval loop calls it with the state it restored).
"""

from __future__ import annotations

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
from scorejax.training import setup
from scorejax.training.setup import Components
from scorejax.training.state import TrainState


def is_image_data(data_shape) -> bool:
  return len(data_shape) == 3


def evaluate_bpd(config, workdir: str, *, step: int | None = None, untrained: bool = False,
                 split: str = "test", divergence: str = "hutchinson_rademacher",
                 num_repeats: int = 1, max_examples: int | None = None,
                 batch_size: int | None = None, rtol: float = 1e-5, atol: float = 1e-5,
                 eps: float = LIKELIHOOD_EPS, seed: int = 0) -> dict:
  """Bits/dim of the (EMA) model saved in `workdir` on `split`; returns the results dict.

  `batch_size` defaults to config.eval.batch_size; `seed` seeds the dequantization
  noise and the divergence probes (the model's initialization uses config.seed).
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
                      num_batches=dataset.num_batches(split, batch_size))


def bpd_of_state(c: Components, state: TrainState,
                 batches: Callable[[str, int], Iterator[np.ndarray]], workdir: str, *, step: int,
                 untrained: bool = False, split: str = "test", batch_size: int,
                 divergence: str = "hutchinson_rademacher", num_repeats: int = 1,
                 max_examples: int | None = None, rtol: float = 1e-5, atol: float = 1e-5,
                 eps: float = LIKELIHOOD_EPS, seed: int = 0, num_batches: int | None = None) -> dict:
  """Bits/dim of `state`'s EMA model on `num_repeats` passes over `split`; returns the results.

  `batches(split, batch_size)` is one ordered pass over a split (`data.EvalData.batches`),
  of `num_batches` batches if known (the progress bar's total, for its ETA);
  `step` / `untrained` label the state. The results are also written to
  `workdir/likelihood_<split>_step<step>.json` (`_untrained.json`). A progress bar
  (process 0, stderr) counts the batches, with the NFE and the running bits/dim.
  """
  images = is_image_data(c.data_shape)
  offset = dequantization_offset(2.0 if c.centered else 1.0) if images else 0.0

  @jax.jit
  def bpd_fn(st, x01, key):
    k_noise, k_probe = jax.random.split(key)
    if images:  # uniform dequantization of 256-level data: (x_int + u) / 256
      x01 = (jnp.round(x01 * 255.0) + jax.random.uniform(k_noise, x01.shape)) / 256.0
    x = c.scaler(x01)
    logp, _, nfe = log_likelihood(k_probe, c.sde, setup.ema_score_fn(c, st), x, rtol=rtol,
                                  atol=atol, eps=eps, divergence=divergence)
    return bits_per_dim(logp, c.data_shape, offset=offset), nfe

  base_key = jax.random.key(seed)
  per_pass = num_batches
  if max_examples is not None:
    needed = -(-int(max_examples) // batch_size)
    per_pass = needed if per_pass is None else min(per_pass, needed)
  pbar = progress.bar(desc=f"bits/dim ({split})", unit="batch",
                      total=None if per_pass is None else num_repeats * per_pass)
  values, nfes, start = [], [], time.perf_counter()
  try:
    for r in range(num_repeats):
      seen = 0
      for b, batch in enumerate(batches(split, batch_size)):
        if max_examples is not None and seen >= max_examples:
          break
        batch = np.asarray(batch)[: None if max_examples is None else max_examples - seen]
        bpd, nfe = bpd_fn(state, jnp.asarray(batch),
                          jax.random.fold_in(jax.random.fold_in(base_key, r), b))
        values.append(np.asarray(bpd))
        nfes.append(int(nfe))
        seen += batch.shape[0]
        pbar.set_postfix(nfe=nfes[-1], bpd=f"{np.mean(np.concatenate(values)):.4f}", refresh=False)
        pbar.update(1)
  finally:
    pbar.close()
  seconds = time.perf_counter() - start
  values = np.concatenate(values)
  if not np.all(np.isfinite(values)):
    raise FloatingPointError(f"{np.sum(~np.isfinite(values))} of {values.size} likelihood solves failed "
                             "(NaN); loosen --rtol/--atol or check the model")
  result = {
      "step": step, "untrained": untrained, "split": split, "divergence": divergence,
      "num_examples": int(values.size), "num_repeats": num_repeats,
      "bpd": float(np.mean(values)),
      "bpd_stderr": float(np.std(values, ddof=1) / math.sqrt(values.size)) if values.size > 1 else float("nan"),
      "nfe_mean": float(np.mean(nfes)), "examples_per_second": float(values.size / seconds),
      "offset": offset, "rtol": rtol, "atol": atol, "eps": eps,
  }
  if jax.process_index() == 0:
    name = f"likelihood_{split}_{'untrained' if untrained else f'step{step}'}.json"
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, name), "w") as f:
      json.dump(result, f, indent=2)
  return result
