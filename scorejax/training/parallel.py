"""Data parallelism over every device of every process: a 1-D 'data' mesh.

Parameters and optimizer state are replicated; global batches are split along
their leading axis over the 'data' axis. One `jax.jit` with these shardings is the
current-JAX form of score_sde's pmapped step, and the same code runs on one CPU,
eight fake CPU devices, a GPU node or a multi-host TPU pod.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def maybe_initialize_distributed() -> None:
  """Calls `jax.distributed.initialize()` when launched as one of several processes.

  Multi-process launches are recognised by JAX's own cluster detection (SLURM,
  TPU pods, Open MPI) or by `JAX_COORDINATOR_ADDRESS` / `JAX_NUM_PROCESSES` /
  `JAX_PROCESS_ID` set by `launch/local_multiprocess.sh`.
  """
  if jax.distributed.is_initialized():
    return
  _enable_cpu_collectives()
  if "JAX_COORDINATOR_ADDRESS" in os.environ:
    jax.distributed.initialize(
        coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
        num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
        process_id=int(os.environ["JAX_PROCESS_ID"]))
  elif any(v in os.environ for v in ("SLURM_NTASKS", "TPU_WORKER_HOSTNAMES", "OMPI_COMM_WORLD_SIZE")):
    if int(os.environ.get("SLURM_NTASKS", "2")) > 1:
      jax.distributed.initialize()


def _enable_cpu_collectives() -> None:
  """Cross-process collectives on CPU need an implementation: gloo.

  jax >= 0.5 uses gloo by default; jax 0.4.x defaulted to none, and then every
  cross-process all-reduce of CPU processes fails. Harmless on GPU/TPU hosts (it
  only configures the CPU client).
  """
  try:
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
  except (AttributeError, ValueError):  # an older/newer jax without this option
    pass


def data_mesh(devices=None) -> Mesh:
  """A mesh with one axis, 'data', over all devices (of all processes by default)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading axis split over 'data', everything else whole."""
  return NamedSharding(mesh, P(DATA_AXIS))


def stacked_batch_sharded(mesh: Mesh) -> NamedSharding:
  """Batches stacked on a new leading axis (n_jitted_steps, B, ...): axis 1 split over 'data'."""
  return NamedSharding(mesh, P(None, DATA_AXIS))


def check_global_batch(batch_size: int, mesh: Mesh) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"training.batch_size={batch_size} must be divisible by the number of devices "
                     f"({n}); set --config.training.batch_size to a multiple of {n}")


def _global_arrays(local: Any, sharding: NamedSharding) -> Any:
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      local)


def global_batch(local_batch: Any, mesh: Mesh) -> Any:
  """Assembles each process's slice of the batch into global arrays sharded over 'data'."""
  return _global_arrays(local_batch, batch_sharded(mesh))


def global_stacked_batches(local_batches: Any, mesh: Mesh) -> Any:
  """`global_batch` for each process's batches stacked on a leading step axis (n, B_local, ...)."""
  return _global_arrays(local_batches, stacked_batch_sharded(mesh))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a host pytree (identical on every process) on all devices, replicated."""
  sharding = replicated(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_callback(np.shape(x), sharding,
                                                             lambda idx: np.asarray(x)[idx]), tree)
