"""Test-wide settings.

* Strict JAX numerics: implicit rank promotion (e.g. adding a (B,) vector to a
  (B, D) batch, which broadcasts along the wrong axis) raises instead of silently
  broadcasting; every per-example scalar must be reshaped explicitly
  (`scorejax.sde.batch_broadcast`).
* A persistent XLA compilation cache shared by the pytest workers (and the CLI
  subprocesses the tests start): configs whose smoke-size networks are identical
  (e.g. the deep and plain variants, VP and its deep twin) compile once, and a rerun
  of the suite loads its programs instead of compiling them again. Every compilation
  is kept (minimum compile time 0 s): the many small programs of the maths tests
  (and of op-by-op dispatch) add up to about a third of the fast tier's time.
"""

import os
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"scorejax-test-xla-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_NUMPY_RANK_PROMOTION", "raise")
