"""scorejax: score-based generative modeling through SDEs in JAX/Flax.

The maths, flat: `sde` (VE/VP/sub-VP SDEs), `losses` (score matching),
`likelihood` (exact log-likelihood, bits/dim). By role: `sampling` (PC, ODE,
annealed Langevin; the ODE solver table), `models` (Flax score networks), `data`,
`training` (state, step, optimizer, checkpoints, parallelism, setup, the loop),
`evaluation` (eval loop, bits/dim, reference statistics, metrics), `report`
(metrics writer, pictures), `toy` (Gaussian-mixture oracle, 2-D sets, sample
distances). `main` is the command line; `metrics` hands on the FID/IS/KID names.
See docs/design.md for the map.
"""

__version__ = "0.1.0"

from scorejax import cpu_host_memory as _cpu_host_memory
from scorejax import xla_cpu_defaults as _xla_cpu_defaults

_xla_cpu_defaults.apply()  # before any backend starts (scorejax/xla_cpu_defaults.py)
_cpu_host_memory.apply()  # likewise (scorejax/cpu_host_memory.py)
