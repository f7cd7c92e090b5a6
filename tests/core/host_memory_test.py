"""Tests for `lgae.core.host_memory`: the malloc settings applied on `import lgae`.

Each case runs in a fresh interpreter, because the settings are per process and
depend on what ran before the import.
"""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'),
                                reason='glibc malloc settings are Linux-only')


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
  full_env = {**os.environ, 'JAX_PLATFORMS': 'cpu', **env}
  full_env.pop('LGAE_TUNE_MALLOC', None)
  full_env.update(env)
  return subprocess.run([sys.executable, '-W', 'always', '-c', code], capture_output=True,
                        text=True, env=full_env, timeout=120, check=True)


def test_import_applies_settings_and_is_idempotent():
  out = _run('import lgae; from lgae.core import host_memory as h; '
             'print(h.is_applied(), h.keep_freed_memory(), h.is_applied())')
  assert out.stdout.split() == ['True', 'True', 'True']
  assert 'imported after JAX' not in out.stderr


_BIG_BLOCK = """
import ctypes, lgae
libc = ctypes.CDLL('libc.so.6')
libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 3 << 30  # Above the largest finite trim threshold (2 GiB); never touched, so cheap.
before = libc.sbrk(0)
block = libc.malloc(size)
grown = libc.sbrk(0)
libc.free(block)
# From the heap: the break moved by about the block (the top chunk's free
# bytes, a few KiB after imports, count towards it) and the block lies below it.
slack = 1 << 20
print(block is not None, grown - before >= size - slack and before - slack <= block < grown,
      libc.sbrk(0) == grown)
"""


def test_big_freed_block_stays_in_the_heap():
  # From the heap (not mmap), and not trimmed away when freed: what a step
  # with multi-GB temporaries (Chairs) needs to avoid re-faulting them.
  assert _run(_BIG_BLOCK).stdout.split() == ['True', 'True', 'True']
  # Control: glibc's defaults serve it with mmap (the heap does not grow).
  assert _run(_BIG_BLOCK, LGAE_TUNE_MALLOC='0').stdout.split() == ['True', 'False', 'True']


def test_opt_out_leaves_malloc_alone():
  out = _run('import lgae; from lgae.core import host_memory as h; print(h.is_applied())',
             LGAE_TUNE_MALLOC='0')
  assert out.stdout.split() == ['False']


def test_warns_when_jax_backend_started_first():
  out = _run('import jax; jax.devices(); import lgae; print(lgae.core.host_memory.is_applied())')
  assert out.stdout.split() == ['True']
  assert 'imported after JAX started its backend' in out.stderr
