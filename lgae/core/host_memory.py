"""Keeps XLA:CPU's per-step buffers mapped: glibc malloc settings, applied on `import lgae`.

XLA:CPU allocates each execution's temporary buffer with malloc (168 MB for the
MNIST step at batch 128) and frees it when the step ends. glibc serves blocks
above 32 MiB with a fresh mmap and unmaps them on free, so every step
page-faults its whole working set back in: ~40k minor faults and ~80 ms of
kernel time per step on the 2-core VM we benchmark on, a third of the step.
Three `mallopt` settings make glibc reuse freed memory instead:

* M_ARENA_MAX=1: XLA's worker threads allocate from the main heap. Per-thread
  arenas are capped at 64 MiB, so a larger block from a worker thread would be
  mmapped whatever the other settings say.
* M_MMAP_MAX=0: large blocks come from the heap, not from mmap.
* M_TRIM_THRESHOLD=-1: freed heap memory stays with the process (glibc's
  documented value for "never trim"). A finite threshold is not enough: the
  largest one mallopt accepts is 2 GiB, and the Chairs step (a 1.2 GB
  temporary, 0.76 GB of state) leaves more than that free at the top of the
  heap, so glibc gave it back and paged it in again on every step: 220k
  faults, 5.4 instead of 3.5 s/step.

The cost is that the process keeps its peak heap until it exits, which is what
a training job does anyway. M_ARENA_MAX only reaches threads that have not yet
allocated, so the settings must be in place before JAX starts its CPU backend;
`lgae/__init__.py` applies them on import. Set LGAE_TUNE_MALLOC=0 to opt out.
Accelerator memory is not allocated by malloc and is unaffected.
"""

import ctypes
import ctypes.util
import os
import sys
import warnings

# From glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_TRIM_THRESHOLD_BYTES = -1   # Never trim (see above).

OPT_OUT_ENV = 'LGAE_TUNE_MALLOC'

_applied = False


def _glibc() -> ctypes.CDLL | None:
  """The C library if it is glibc (has mallopt and gnu_get_libc_version), else None."""
  if not sys.platform.startswith('linux'):
    return None
  try:
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
  except OSError:
    return None
  if not (hasattr(libc, 'mallopt') and hasattr(libc, 'gnu_get_libc_version')):
    return None   # e.g. musl: no such tunables.
  return libc


def _jax_backend_started() -> bool:
  """True if a JAX backend (and its thread pool) already exists; False if unknown."""
  module = sys.modules.get('jax._src.xla_bridge')
  started = getattr(module, 'backends_are_initialized', None)
  try:
    return bool(started()) if started else False
  except Exception:  # pylint: disable=broad-except  # A private API; never fail an import on it.
    return False


def keep_freed_memory() -> bool:
  """Applies the malloc settings above (once per process).

  Returns:
    True if they are in effect: glibc, not opted out through LGAE_TUNE_MALLOC=0.
    Warns (and still applies them) if JAX's backend had already started, since
    its threads then keep their per-thread arenas and most of the gain is lost.
  """
  global _applied
  if _applied:
    return True
  if os.environ.get(OPT_OUT_ENV, '1') == '0':
    return False
  libc = _glibc()
  if libc is None:
    return False
  if _jax_backend_started():
    warnings.warn(
        'lgae was imported after JAX started its backend, so its malloc settings reach only '
        'new threads and XLA:CPU steps stay slower (page faults on every step). Import lgae '
        'before running any JAX computation; see lgae/host_memory.py.', stacklevel=3)
  ok = (libc.mallopt(_M_ARENA_MAX, 1) == 1 and libc.mallopt(_M_MMAP_MAX, 0) == 1
        and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES) == 1)
  _applied = ok
  return ok


def is_applied() -> bool:
  """Whether `keep_freed_memory` has taken effect in this process."""
  return _applied
