"""XLA:CPU's compile options that scorejax changes from JAX's defaults, set on import.

XLA:CPU (jaxlib 0.10) hands convolutions and dots to YNNPACK fusions by default. On the
U-Nets here these run ~1.2-1.6x slower than XLA's own (Eigen) kernels, which use both
cores of a 2-core machine where the YNNPACK fusions keep the step near one (measured
with `jax.profiler` on configs/digits.py; docs/training.md, "Speed on CPU"):

  full training step, 2-core CPU        YNNPACK fusions (default)   XLA's kernels
  configs/digits.py, batch 64           360-430 ms                  220-270 ms
  NCSN++ (ve_cifar10), batch 8          10.10 s                     8.34 s

So `import scorejax` adds `--xla_cpu_experimental_ynn_fusion_type=` (no YNNPACK fusion
types) to `XLA_FLAGS`, unless the variable already names that flag: to choose the
YNNPACK fusions yourself, set it, e.g.
`XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=individual_convolution,individual_dot`.
XLA reads `XLA_FLAGS` once, when the first backend starts: a program that has already
run a JAX computation before importing scorejax keeps the flags it started with.
The option concerns the CPU backend only; GPU and TPU compilation is unaffected. The
results agree with the default's to float32 rounding (the fixtures hold to 1e-4).
"""

from __future__ import annotations

import os

FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)


def apply(environ=os.environ) -> str:
  """Adds each flag of `FLAGS` whose name `environ['XLA_FLAGS']` does not yet mention;
  returns the resulting XLA_FLAGS."""
  current = environ.get("XLA_FLAGS", "")
  added = [f for f in FLAGS if f.split("=")[0] not in current]
  if added:
    environ["XLA_FLAGS"] = " ".join([current] + added if current else added)
  return environ.get("XLA_FLAGS", "")
