"""What a run is built from, shared by training, sampling, evaluation and bits/dim.

The config edge: `build_components(config)` turns the config into objects (SDE,
model, optimizer, losses, the data shape the config states, scalers) without
touching the data, and `SampleSettings.from_config` reads how sample grids are
drawn. Everything below takes these typed values: `init_state` / `load_state`
give the parameters, `scaled_train_step` / `scaled_eval_step` the run's steps,
`ema_score_fn` the score function of the EMA parameters,
`make_snapshot_sampler` / `save_snapshot_samples` the sample grid (or 2-D figures)
of a state.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from scorejax import data, losses, models
from scorejax import sde as sde_lib
from scorejax.report import figures, images
from scorejax.report.writer import MetricsWriter
from scorejax.sampling import get_sampling_fn
from scorejax.training import checkpoint, optim, parallel
from scorejax.training.state import TrainState
from scorejax.training.step import make_eval_step, make_train_step

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Components:
  """What a run is built from; everything else takes these as arguments.

  `continuous`: the model is conditioned on continuous time (score_sde's
  `training.continuous`), not on the index of the discrete chain. `centered`: the
  model sees data in [-1, 1] (`scaler` maps [0, 1] there), else in [0, 1].
  `learning_rate`: the optimizer's schedule of the step (logged).
  """
  sde: sde_lib.SDE
  model: Any
  continuous: bool
  optimizer: optax.GradientTransformation
  learning_rate: optax.Schedule
  loss_fn: Callable
  eval_loss_fn: Callable
  data_shape: tuple[int, ...]
  centered: bool
  scaler: Callable[[Array], Array]
  inverse_scaler: Callable[[Array], Array]


def build_components(config) -> Components:
  """SDE, model, optimizer, losses, data shape and scalers from `config` (opens no data)."""
  sde = sde_lib.sde_from_config(config)
  model = models.get_model(config)
  t = config.training
  continuous = bool(t.continuous)
  common = dict(reduce_mean=bool(t.reduce_mean), continuous=continuous,
                likelihood_weighting=bool(t.likelihood_weighting), eps=float(t.eps),
                # absent from configs written before maximum-likelihood training: the defaults
                importance_weighting=bool(t.get("importance_weighting", False)),
                time_sampling=str(t.get("time_sampling", "iid")))
  label_dropout = float(t.get("label_dropout", 0.0))
  return Components(
      sde=sde, model=model, continuous=continuous,
      optimizer=optim.optimizer_from_config(config.optim, int(t.n_iters)),
      learning_rate=optim.schedule_from_config(config.optim, int(t.n_iters)),
      loss_fn=losses.get_sde_loss_fn(sde, model, train=True, label_dropout=label_dropout, **common),
      eval_loss_fn=losses.get_sde_loss_fn(sde, model, train=False, **common),
      data_shape=data.get_data_shape(config), centered=bool(config.data.centered),
      scaler=data.get_data_scaler(config), inverse_scaler=data.get_data_inverse_scaler(config))


def init_state(c: Components, key: Array) -> TrainState:
  """Initial parameters (from `key`), EMA copy and optimizer state."""
  x = jnp.zeros((1,) + c.data_shape, jnp.float32)
  labels, _ = models.labels_and_std(c.sde, jnp.full((1,), 0.5), c.continuous)
  variables = c.model.init({"params": key, "dropout": key}, x, labels, train=False)
  variables = dict(variables)
  params = variables.pop("params")
  return TrainState.create(params, c.optimizer, model_state=variables)


# XLA options for the initializers, which run once per process. On CPU, LLVM's full
# optimization of their many small random-number kernels takes longer to compile than it
# saves when they run: level 1 compiles configs/digits.py's in 3.6 s instead of 6.7 s
# and NCSN++'s in 10.5 s instead of 13.3 s, runs them as fast, and gives bit-identical
# parameters for both (docs/training.md, "Start-up").
INIT_CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def jit_init_state(c: Components, out_shardings: Any) -> Callable[[Array], TrainState]:
  """`key -> init_state(c, key)` jitted with `out_shardings` (compiled for a short
  compile on CPU: `INIT_CPU_COMPILER_OPTIONS`). Every path that initializes a run's
  state uses it, so that a training run and `load_state(untrained=True)` agree."""
  options = INIT_CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
  return jax.jit(functools.partial(init_state, c), out_shardings=out_shardings,
                 compiler_options=options)


def num_classes(config) -> int:
  """The classes of a label-conditional score model (`config.model.num_classes`; 0: unconditional)."""
  return int(config.model.get("num_classes", 0))


def with_scaler(step_fn: Callable, scaler: Callable[[Array], Array]) -> Callable:
  """Applies the data scaler ([0,1] -> model range) to the batch inside the jitted step
  (to the images of a labelled batch `{"image", "label"}`)."""
  def scale(batch):
    if isinstance(batch, dict):
      return {**batch, "image": scaler(batch["image"])}
    return scaler(batch)

  @functools.wraps(step_fn)  # keeps the step's name (compilation logs and counts)
  def scaled_step(state, batch, key):
    return step_fn(state, scale(batch), key)
  return scaled_step


def scaled_train_step(c: Components, ema_rate: float) -> Callable:
  """The run's `train_step(state, batch, key)` on [0, 1] batches: `c`'s loss, optimizer and
  scaler, EMA at `ema_rate` (the training loop jits it; tools and tests trace or time it)."""
  return with_scaler(make_train_step(c.loss_fn, c.optimizer, ema_rate), c.scaler)


def scaled_eval_step(c: Components) -> Callable:
  """The run's `eval_step(state, batch, key)` on [0, 1] batches: the EMA parameters' loss."""
  return with_scaler(make_eval_step(c.eval_loss_fn), c.scaler)


def ema_score_fn(c: Components, state: TrainState):
  """The score function `score_fn(x, t)` of the EMA parameters of `state`."""
  variables = {"params": state.ema_params, **state.model_state}
  return models.get_score_fn(c.sde, c.model, variables, continuous=c.continuous)


def load_state(c: Components, workdir: str, *, seed: int, snapshot_freq: int,
               step: int | None = None, untrained: bool = False) -> tuple[TrainState, int]:
  """(state, step): the state saved in `workdir` at `step` (default: the newest readable).

  With `untrained`, the freshly initialized state (step 0) of a run with `seed`
  instead — a baseline for evaluations. `snapshot_freq` is the run's
  (training.snapshot_freq), as its checkpoint manager was made with. The
  checkpoints are only read: `workdir/checkpoints` may be read-only.
  """
  mesh = parallel.data_mesh()
  init_key = jax.random.fold_in(jax.random.key(seed), 0)
  init = lambda k: init_state(c, k)  # noqa: E731
  if untrained:
    return jit_init_state(c, parallel.replicated(mesh))(init_key), 0
  # A restore needs only the structure: no initializers are compiled or run.
  abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=parallel.replicated(mesh)),
      jax.eval_shape(init, init_key))
  manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"),
                                    snapshot_freq=snapshot_freq, read_only=True)
  try:
    if step is None:
      restored = checkpoint.restore_latest(manager, abstract, set_aside=False)
      if restored is None:
        raise FileNotFoundError(f"no checkpoint under {workdir}/checkpoints; train first with --mode=train")
      state, step = restored
    else:
      state = checkpoint.restore_step(manager, step, abstract)
  finally:
    manager.close()
  return state, int(step)


@dataclasses.dataclass(frozen=True)
class SampleSettings:
  """How a run's sample grids and figures are drawn.

  `sampling`: the config's `sampling` part (the sampler, `sampling.get_sampling_fn`);
  `count`: samples per grid; `seed`: the run's (the grid of step s is sampled from
  fold_in(key(seed + 1), s)); `toy_name`: the TOY2D set, whose data 2-D figures
  draw under the samples (and, for a Gaussian mixture, its true score field), or None.
  """
  sampling: Any
  count: int
  seed: int
  toy_name: str | None = None

  @classmethod
  def from_config(cls, config) -> "SampleSettings":
    toy = str(config.data.dataset).upper() == "TOY2D"
    return cls(sampling=config.sampling,
               count=int(config.training.get("snapshot_sample_count", 64)), seed=int(config.seed),
               toy_name=str(config.data.toy_name) if toy else None)


def make_snapshot_sampler(c: Components, s: SampleSettings) -> Callable[[TrainState, Array], Array]:
  """`sample(state, key)`: `s.count` samples in [0, 1] of the EMA parameters, jitted once per run."""
  sample = get_sampling_fn(s.sampling, c.sde, (s.count,) + c.data_shape)

  def snapshot_sample(state: TrainState, key: Array) -> Array:
    return c.inverse_scaler(sample(key, ema_score_fn(c, state))[0])
  return jax.jit(snapshot_sample)


def save_snapshot_samples(c: Components, s: SampleSettings, state: TrainState, step: int,
                          workdir: str, writer: MetricsWriter | None, sampler=None, *,
                          path: str | None = None) -> str:
  """Samples with the EMA parameters and writes a PNG (grid, or scatter for 2-D data).

  `sampler` is `make_snapshot_sampler(c, s)`, built here if not given. The PNG goes
  to `path` (default: the training snapshot's `workdir/samples/step_XXXXXXXX.png`),
  the samples beside it as `.npy`; `writer` also logs an image grid to TensorBoard
  (None: the files only).
  """
  sampler = sampler or make_snapshot_sampler(c, s)
  key = jax.random.fold_in(jax.random.key(s.seed + 1), step)
  x = np.asarray(sampler(state, key))
  n = x.shape[0]
  path = path or os.path.join(workdir, "samples", f"step_{step:08d}.png")
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if len(c.data_shape) == 3 and writer is not None:
      writer.image_grid(step, "samples", x, path)
    elif len(c.data_shape) == 3:
      images.save_image_grid(x, path)
    else:
      figures.write_2d_figures(c.sde, ema_score_fn(c, state), x.reshape(n, -1)[:, :2], step, path,
                               toy_name=s.toy_name, seed=s.seed)
    np.save(path[:-4] + ".npy", x)
  return path
