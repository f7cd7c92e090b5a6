"""What the probes' command lines share: one `error: ...` line for bad input, the latents file."""

import os
import sys
import zipfile
from typing import NoReturn

import numpy as np
from absl import app


class InputError(Exception):
  """Input the user can fix from the message alone: reported as one line, exit code 1."""


def fail(error: BaseException | str) -> NoReturn:
  """Prints `error: <message>` (on one line) to stderr and exits with code 1."""
  print(f'error: {" ".join(str(error).split())}', file=sys.stderr, flush=True)
  sys.exit(1)


def load_latents(path: str, min_points: int) -> tuple[np.ndarray, np.ndarray]:
  """(ztr [N, d], ytr [N]) of a `dump_latents` .npz, checked.

  Raises:
    InputError: no such file, not an .npz, no `ztr`/`ytr` arrays, arrays of
      the wrong shape, or fewer than `min_points` latents.
  """
  if not os.path.isfile(path):
    raise InputError(f'{path} is not a file; pass the .npz written by '
                     'experiments.probes.dump_latents.')
  expected = 'an .npz of arrays ztr, ytr (as experiments.probes.dump_latents writes)'
  try:
    data = np.load(path, allow_pickle=False)
  except OSError as e:
    raise InputError(f'cannot read {path}: {e}') from e
  except (ValueError, zipfile.BadZipFile) as e:   # numpy's magic-number guess failed.
    raise InputError(f'{path} is not {expected}.') from e
  if not isinstance(data, np.lib.npyio.NpzFile):
    raise InputError(f'{path} holds a single array; expected {expected}.')
  with data:
    missing = [k for k in ('ztr', 'ytr') if k not in data.files]
    if missing:
      raise InputError(f'{path} has no {" or ".join(missing)} (its arrays: '
                       f'{", ".join(data.files) or "none"}); expected {expected}.')
    z, y = data['ztr'], data['ytr']
  if z.ndim != 2 or y.ndim != 1 or z.shape[0] != y.shape[0]:
    raise InputError(f'{path}: ztr must be [N, d] and ytr [N]; got {z.shape} and {y.shape}.')
  if z.shape[0] < min_points:
    raise InputError(f'{path} has {z.shape[0]} latents; this probe needs at least {min_points}.')
  return z, y


def run_main(argv, run, *args) -> None:
  """A probe's `main`: no positional arguments; `run(*args)`, its InputError as one line."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    run(*args)
  except InputError as e:
    fail(e)
