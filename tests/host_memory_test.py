"""Tests for `lgae.host_memory`: the malloc settings applied on `import lgae`.

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
  out = _run('import lgae; from lgae import host_memory as h; '
             'print(h.is_applied(), h.keep_freed_memory(), h.is_applied())')
  assert out.stdout.split() == ['True', 'True', 'True']
  assert 'imported after JAX' not in out.stderr


def test_opt_out_leaves_malloc_alone():
  out = _run('import lgae; from lgae import host_memory as h; print(h.is_applied())',
             LGAE_TUNE_MALLOC='0')
  assert out.stdout.split() == ['False']


def test_warns_when_jax_backend_started_first():
  out = _run('import jax; jax.devices(); import lgae; print(lgae.host_memory.is_applied())')
  assert out.stdout.split() == ['True']
  assert 'imported after JAX started its backend' in out.stderr
