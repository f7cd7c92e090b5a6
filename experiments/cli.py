"""The command lines' one front door: an expected failure is one `error:` line and exit code 1.

Every CLI under experiments/ starts through `run(main)`. Two kinds of failure
are expected, and print as `error: <message>` on stderr (the first line is
the error; a message may add lines that say what to do) with exit code 1:

- `lgae.errors.UserError`: bad config, data not prepared, an unusable
  checkpoint or workdir, ...;
- an `OSError` the operating system raised for a path or a write: permission
  denied, read-only file system, no space left, not a directory, a name too
  long, ... (also when it is the cause of another exception, as when a
  background checkpoint write fails on a full disk).

Anything else is a bug and keeps its traceback. `--verbosity=1` (absl's debug
level) or higher keeps the traceback of expected failures too.
"""

import errno
import sys
from collections.abc import Callable
from typing import NoReturn

from absl import app, flags

from lgae import errors
from lgae.core import checkpointing, console

# Errors of the operating system about a path the user chose, or about the
# disk: what each means for the user.
_OS_REASONS = {
    errno.ENOSPC: 'no space left on the device',
    errno.EDQUOT: 'disk quota exceeded',
    errno.EFBIG: 'file too large for the file system (or for `ulimit -f`)',
    errno.EACCES: 'permission denied',
    errno.EPERM: 'operation not permitted',
    errno.EROFS: 'read-only file system',
    errno.ENOTDIR: 'a part of the path is a file, not a directory',
    errno.EISDIR: 'it is a directory, not a file',
    errno.ENAMETOOLONG: 'file name too long',
    errno.ENOENT: 'no such file or directory',
    errno.EEXIST: 'it already exists',
    errno.ELOOP: 'too many levels of symbolic links',
    errno.EIO: 'input/output error',
}


def begin(argv: list[str]) -> None:
  """A CLI's first lines: no positional arguments, lgae's own console lines, quiet Orbax exits."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  console.quiet_unless_verbosity_given()
  # A failed restore leaves Orbax reads behind; their reports at exit would bury the one line.
  checkpointing.silence_closed_event_loop_callbacks()


def fail(message: object) -> NoReturn:
  """Prints `error: <message>` (one line) to stderr and exits with code 1."""
  print(f'error: {" ".join(str(message).split())}', file=sys.stderr, flush=True)
  sys.exit(1)


def os_error(error: BaseException) -> OSError | None:
  """The OSError of the user's paths or disk behind `error` (itself or a cause), else None."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _OS_REASONS:
      return error
    error = error.__cause__ or error.__context__
  return None


def os_error_message(error: OSError) -> str:
  """One line: what the OS refused, for which path, and what to do."""
  reason = _OS_REASONS.get(error.errno, error.strerror or type(error).__name__)
  path = error.filename
  where = f'{path}: ' if path else ''
  if error.filename2:
    where = f'{path} -> {error.filename2}: '
  advice = ''
  if errors.is_out_of_space(error):
    advice = (' Free some space (or choose a directory on another disk) and run the command '
              'again; what was saved before this write is kept.')
  elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
    advice = ' Choose a path you can write to.'
  elif error.errno in (errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP):
    advice = ' Check the path given on the command line.'
  return f'{where}{reason} ({errno.errorcode.get(error.errno, error.errno)}).{advice}'


def _debugging() -> bool:
  verbosity = flags.FLAGS['verbosity']
  return verbosity.present and verbosity.value >= 1


def expected_failure_message(error: BaseException) -> str | None:
  """The message to print for an expected failure, or None for a bug."""
  if isinstance(error, errors.UserError):
    return str(error)
  found = os_error(error)
  return None if found is None else os_error_message(found)


def guarded(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  """`main`, with expected failures printed as one `error:` line and exit code 1."""

  def guarded_main(argv):
    try:
      return main(argv)
    except app.UsageError as e:   # absl would print the whole --help first.
      if _debugging():
        raise
      fail(f'{e} (--helpshort lists the flags)')
    except Exception as e:  # pylint: disable=broad-except
      message = expected_failure_message(e)
      if message is None or _debugging():
        raise
      lines = str(message).strip().splitlines() or [type(e).__name__]
      # The first line is the error; the lines after it (if any) say what to do.
      print(f'error: {lines[0].strip()}', *lines[1:], sep='\n', file=sys.stderr, flush=True)
      sys.exit(1)

  return guarded_main


def run(main: Callable[[list[str]], None], flags_parser=None) -> None:
  """`absl.app.run(main)` behind the front door."""
  if flags_parser is None:
    app.run(guarded(main))
  else:
    app.run(guarded(main), flags_parser=flags_parser)
