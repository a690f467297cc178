"""scorejax.cpu_host_memory: a CPU program's working memory is reused between calls, not
faulted in afresh each time; and a user's own setting wins.

The behaviour is measured, in fresh processes, as minor page faults per call of a program
with a 64 MB temporary (16,384 pages): with scorejax's settings almost none, with JAX's and
glibc's defaults at least one per page of it.
"""

import os
import subprocess
import sys

import pytest

from scorejax import cpu_host_memory

_FAULTS_PER_CALL = r"""
import resource, sys
import scorejax  # noqa: F401
import jax, jax.numpy as jnp
n = 16 * 2**20  # 64 MB of float32

@jax.jit
def f(a):
  b = jax.lax.optimization_barrier(a * 2.0)  # a 64 MB temporary, not fused away
  return (b + 1.0).sum()

a = jnp.ones((n,))
for _ in range(3):
  f(a).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
  f(a).block_until_ready()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 10)
"""


def _faults_per_call(**env_changes) -> int:
  env = {k: v for k, v in os.environ.items()
         if not (k.startswith("MALLOC_") or k == cpu_host_memory.ASYNC_DISPATCH_VARIABLE)}
  env.update(env_changes, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", _FAULTS_PER_CALL], env=env, capture_output=True,
                       text=True, timeout=300, check=True)
  return int(out.stdout.split()[-1])


@pytest.mark.skipif(cpu_host_memory._glibc() is None, reason="glibc's mallopt only")
def test_a_programs_temporary_is_reused_not_faulted_in_at_every_call():
  pages = 16 * 2**20 * 4 // 4096
  assert _faults_per_call() < pages // 20
  # JAX's and glibc's defaults (both named by the environment, so left alone):
  assert _faults_per_call(JAX_CPU_ENABLE_ASYNC_DISPATCH="true",
                          MALLOC_TRIM_THRESHOLD_="131072") >= pages


def test_settings_named_by_the_environment_are_left_alone(monkeypatch):
  import jax
  monkeypatch.setattr(jax.config, "update", lambda *a: pytest.fail(f"jax.config.update{a}"))
  assert cpu_host_memory.apply({"JAX_CPU_ENABLE_ASYNC_DISPATCH": "true",
                                "MALLOC_ARENA_MAX": "2"}) == {}
  assert cpu_host_memory.apply({"JAX_CPU_ENABLE_ASYNC_DISPATCH": "true",
                                "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}) == {}


def test_importing_scorejax_made_this_process_dispatch_synchronously():
  import jax
  import scorejax  # noqa: F401
  if cpu_host_memory.ASYNC_DISPATCH_VARIABLE not in os.environ:
    assert jax.config.read("jax_cpu_enable_async_dispatch") is False
