"""Test-wide settings.

A persistent XLA compilation cache shared by the pytest workers (and the CLI
subprocesses the tests start): configs whose smoke-size networks are identical
(e.g. the deep and plain variants, VP and its deep twin) compile once.
"""

import os
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"scorejax-test-xla-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
