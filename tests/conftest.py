"""Test-wide settings.

* Strict JAX numerics: implicit rank promotion (e.g. adding a (B,) vector to a
  (B, D) batch, which broadcasts along the wrong axis) raises instead of silently
  broadcasting; every per-example scalar must be reshaped explicitly
  (`scorejax.sde.batch_broadcast`).
* A persistent XLA compilation cache shared by the pytest workers (and the CLI
  subprocesses the tests start): configs whose smoke-size networks are identical
  (e.g. the deep and plain variants, VP and its deep twin) compile once.
"""

import os
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"scorejax-test-xla-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
os.environ.setdefault("JAX_NUMPY_RANK_PROMOTION", "raise")
