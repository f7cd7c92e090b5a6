"""What the probes' command lines share: their bad-input error and the latents file.

Each probe starts through `experiments.cli.run`, the front door of every CLI:
an `InputError` (or any other `lgae.errors.UserError`) is one `error: ...` line.
"""

import os
import zipfile

import numpy as np
from absl import app

from lgae import errors


class InputError(errors.UserError):
  """Input the user can fix from the message alone: reported as one line, exit code 1."""


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
  """A probe's `main`: no positional arguments, then `run(*args)`."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  run(*args)
