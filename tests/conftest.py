"""Test-wide setup, done before anything imports jax.

- Four forced CPU devices: every test exercises the sharded path, and the
  1-vs-4-device equivalence test can build both meshes in one process.
- A persistent XLA compilation cache for the session: tests (and the CLI
  subprocesses they start) compile the same small programs many times, and
  XLA's CPU compile of the initialisers dominates their run time otherwise.
"""

import os
import tempfile

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=4').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR',
                      os.path.join(tempfile.gettempdir(), 'lgae-test-xla-cache'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
