"""The one base class of the failures a user fixes from the message alone.

Every such error of lgae (a config that does not validate, data that is not
prepared, an unusable checkpoint or workdir, ...) derives from `UserError`
as well as from the builtin it always was (`ValueError`, `FileNotFoundError`,
...), so callers that catch the builtin keep working. The command lines print
a `UserError` as one `error: ...` line and exit with code 1; anything else is
a bug and keeps its traceback.
"""

import errno
import os


class UserError(Exception):
  """A failure whose message says what to do; the CLIs print it without a traceback."""


# How the libraries below lgae report a full disk: an OSError's errno, or only
# in the text of their own exception types (TensorStore: "[os_error_code='28']",
# TensorFlow's ResourceExhaustedError: "No space left on device").
_OUT_OF_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_OUT_OF_SPACE_TEXTS = ('No space left on device', 'Disk quota exceeded', 'File too large',
                       "os_error_code='28'", "os_error_code='122'", "os_error_code='27'")


def is_out_of_space(error: BaseException | None) -> bool:
  """Whether `error`, or an exception it was raised from, says the disk (or quota) is full."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _OUT_OF_SPACE_ERRNOS:
      return True
    if any(text in str(error) for text in _OUT_OF_SPACE_TEXTS):
      return True
    error = error.__cause__ or error.__context__
  return False


def free_space(path: str) -> str:
  """The space left for unprivileged writes on `path`'s file system, e.g. '12.3 MB', or '?'."""
  while path and not os.path.exists(path):
    path = os.path.dirname(path)
  try:
    stat = os.statvfs(path or '.')
  except OSError:
    return '?'
  free = stat.f_bavail * stat.f_frsize
  for unit in ('bytes', 'KB', 'MB', 'GB', 'TB'):
    if free < 1024 or unit == 'TB':
      return f'{free:.0f} {unit}' if unit == 'bytes' else f'{free:.1f} {unit}'
    free /= 1024
  return '?'
