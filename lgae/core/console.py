"""What a person sees while lgae runs: its own lines, not its libraries' internals.

lgae reports through absl logging (so a log file, `--verbosity` and
`caplog` all work as usual). A plain run, though, would also print every INFO
line of Orbax, tfds, JAX and TensorFlow (~135 lines for 100 steps). `quiet()`
keeps the console to lgae's own INFO lines (start-up summary, progress, evals,
checkpoints, the end) plus anybody's warnings and errors, each as
`HH:MM:SS message`. The CLIs call it unless `--verbosity` is given; a notebook
may call it too.
"""

import logging
import os
import time

from absl import flags
from absl import logging as absl_logging

# Files whose INFO lines are lgae's own: the package and its command lines.
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_OWN_DIRS = tuple(
    os.path.join(_REPO, name) + os.sep
    for name in ('lgae', 'experiments'))


# Orbax's own warnings and errors: notes on options lgae sets on purpose
# (read-only restores), and reports of a failed save logged from its background
# threads. A failure reaches lgae as an exception when it waits for the save or
# restore, and is reported there as one line (`lgae.core.checkpointing.CheckpointError`).
_ORBAX_DIR = f'{os.sep}orbax{os.sep}'


class _OwnLinesOnly(logging.Filter):
  """Passes warnings and errors from anywhere (bar Orbax's, above), INFO only from lgae's files."""

  def filter(self, record: logging.LogRecord) -> bool:
    path = os.path.abspath(record.pathname)
    if _ORBAX_DIR in path:
      return False
    if record.name == 'asyncio' and 'exception was never retrieved' in record.getMessage():
      return False   # Orbax's reads still in flight after a failed restore: the same error again.
    return record.levelno >= logging.WARNING or path.startswith(_OWN_DIRS)


class _Brief(logging.Formatter):
  """`HH:MM:SS message`; warnings and errors say so."""

  def format(self, record: logging.LogRecord) -> str:
    message = record.getMessage()
    if record.levelno >= logging.WARNING:
      message = f'{record.levelname.lower()}: {message}'
    return f'{time.strftime("%H:%M:%S", time.localtime(record.created))} {message}'


def quiet() -> None:
  """Shows lgae's INFO lines and everyone's warnings, briefly formatted; idempotent."""
  absl_logging.use_absl_handler()   # In notebooks absl's handler may not be installed yet.
  absl_logging.set_verbosity(absl_logging.INFO)
  handler = absl_logging.get_absl_handler()
  if not any(isinstance(f, _OwnLinesOnly) for f in handler.filters):
    handler.addFilter(_OwnLinesOnly())
  # The ABSLHandler filters, then hands records to its python handler, which formats.
  handler.python_handler.setFormatter(_Brief())


def quiet_unless_verbosity_given() -> None:
  """For command lines: `quiet()`, unless the user passed absl's --verbosity (after flag parsing)."""
  if not flags.FLAGS['verbosity'].present:
    quiet()
