"""The run directory: checks before a run touches it, and one run at a time.

`check_usable(workdir)` refuses a path that cannot be a run directory before
anything is written.

Two runs writing one workdir would interleave checkpoints and metrics (and
Orbax makes the second wait minutes before failing). `hold(workdir)` takes an
exclusive `flock` on `<workdir>/.lgae.lock` for the run's lifetime and writes
who holds it there. The kernel releases the lock when the holder exits, however
it exits (kill -9 included), so a stale hold never blocks the next run: the
lock file may remain, but it is only a name tag. A second run is refused at
once, naming the holder.

flock is per host: on a filesystem shared between hosts (NFS), two hosts may
not see each other's locks; there the scheduler must not start two runs on one
workdir.

A run of several processes (one per host, or several on one machine) shares
one workdir: process i holds its own lock file (`.lgae.lock` for process 0,
`.lgae.lock.<i>` for the others), so the processes of one run never refuse
each other, while any process of a second run finds its peer's lock taken.
The training loop then makes the refusal collective (`lgae.train`), so every
process of the second run stops at once rather than waiting for its peers.
"""

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from typing import Iterator

from lgae import errors

LOCK_FILE = '.lgae.lock'


class WorkdirError(errors.UserError, RuntimeError):
  """The workdir cannot be used; the message says what to do."""


class WorkdirInUseError(WorkdirError):
  """Another live run holds the workdir."""


def check_usable(workdir: str) -> None:
  """Raises WorkdirError if `workdir` exists but is not a directory we can write."""
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise WorkdirError(f'--workdir {path} is an existing file, not a directory: choose a '
                       'directory (it is created if missing).')
  parent = path
  while not os.path.exists(parent):   # The nearest existing ancestor must be a writable dir.
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise WorkdirError(f'--workdir {path}: {parent} is a file, so the directory cannot be '
                       'created; choose another path.')
  if not os.access(parent, os.W_OK | os.X_OK):
    raise WorkdirError(f'--workdir {path}: {parent} is not writable by this user; choose '
                       'another path.')


@contextlib.contextmanager
def removed_if_unused(workdir: str, *subdirs: str) -> Iterator[None]:
  """On an exception, removes `workdir` and `subdirs` if this run created them and left them empty.

  So that a run refused after it took the workdir (e.g. its donor run is
  unusable) leaves no empty directory or lock file behind. Directories that
  existed before, and anything written into them, are left alone.
  """
  created = [d for d in (*subdirs, workdir) if not os.path.exists(d)]
  try:
    yield
  except BaseException:
    if workdir in created:
      for name in os.listdir(workdir) if os.path.isdir(workdir) else ():
        if name.startswith(LOCK_FILE):
          with contextlib.suppress(OSError):
            os.unlink(os.path.join(workdir, name))
    for directory in created:   # subdirs first, then the workdir.
      with contextlib.suppress(OSError):
        os.rmdir(directory)   # Only if empty.
    raise


def _holder_description(text: str) -> str:
  try:
    holder = json.loads(text)
    return (f'pid {holder["pid"]} on {holder["host"]}, started {holder["started"]}: '
            f'{holder["command"]}')
  except (ValueError, KeyError, TypeError):
    return 'a run that did not say who it is'


def lock_path(workdir: str, process_index: int = 0) -> str:
  """The lock file of process `process_index` of a run in `workdir`."""
  name = LOCK_FILE if process_index == 0 else f'{LOCK_FILE}.{process_index}'
  return os.path.join(workdir, name)


@contextlib.contextmanager
def hold(workdir: str, process_index: int = 0) -> Iterator[None]:
  """Holds `workdir` for this process; raises WorkdirInUseError if another run does.

  Creates `workdir` if needed. `process_index` is this process's place in a
  multi-process run (`jax.process_index()`); each index has its own lock.
  """
  path = lock_path(workdir, process_index)
  try:
    os.makedirs(workdir, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:   # A path the OS refuses: too long a name, under /proc, ...
    raise WorkdirError(f'--workdir {os.path.abspath(workdir)} cannot be used: '
                       f'{e.strerror or e} ({e.filename}); choose another path.') from e
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _holder_description(os.pread(fd, 65536, 0).decode(errors='replace'))
      raise WorkdirInUseError(
          f'{os.path.abspath(workdir)} is in use by another run ({holder}). Wait for it to '
          'finish, stop it (SIGTERM checkpoints and exits), or use another --workdir.') from None
    # Ours now (any earlier holder has exited): say who we are.
    me = {'pid': os.getpid(), 'host': socket.gethostname(),
          'started': time.strftime('%Y-%m-%d %H:%M:%S'), 'command': ' '.join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(me) + '\n').encode(), 0)
    yield
  finally:
    os.close(fd)   # Releases the flock.
