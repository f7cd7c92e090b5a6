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


import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope='session')
def real_mnist_dir(tmp_path_factory):
  """Real MNIST prepared offline in a temporary TFDS dir, or a skip saying why.

  The four MNIST .gz files are found in $LGAE_REAL_MNIST_DIR, else in the
  development workshop beside this repository (present in CI).
  """
  from lgae.data import mnist_local  # pylint: disable=g-import-not-at-top
  workshop = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..',
                          'shared', 'data', 'mnist')
  source = os.environ.get('LGAE_REAL_MNIST_DIR') or (workshop if os.path.isdir(workshop) else '')
  if not source:
    pytest.skip('no real MNIST files: set LGAE_REAL_MNIST_DIR to a directory holding the four '
                'MNIST .gz files to run this test')
  data_dir = tmp_path_factory.mktemp('real_mnist')
  mnist_local.prepare(source, str(data_dir))  # With the real sha256.
  return str(data_dir)
