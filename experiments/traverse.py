r"""Writes the paper-style figures of a checkpoint as PNGs.

  python -m experiments.traverse --workdir=/tmp/mnist --out=/tmp/mnist_figures
  python -m experiments.traverse --workdir=/tmp/mnist --out=DIR --step=4000 --seed=1

Restores the checkpoint (latest, or --step) read-only and writes into --out:
samples_by_category.png (Fig. 2; samples_by_category_<i>.png for further Cat
codes), traverse_u<i>.png per continuous code (Figs. 3-4),
reconstructions.png and, for methods that decode their representation
(LatentGAN-AE, beta-VAE, WAE), traverse_z.png: the first eval image's
representation with one dimension swept per row. Nothing is written into the
workdir. Unusable workdirs end with one `error: ...` line and exit code 1,
before --out is created.
"""

import os

import jax
from absl import flags

from experiments import cli
from lgae import errors
from lgae.evaluation import run as evaluation, traversal

_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory written by experiments.main.')
_OUT = flags.DEFINE_string('out', None, 'Directory for the PNGs (created if missing).')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the noise and code draws in the figures.')
flags.mark_flags_as_required(['workdir', 'out'])


class OutDirError(errors.UserError, OSError):
  """--out cannot hold the figures."""


def make_out_dir(out_dir: str) -> None:
  """Creates `out_dir` if missing; OutDirError if it is a file or cannot be written."""
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise OutDirError(f'--out={out_dir} is a file; give a directory for the figures.')
  try:
    os.makedirs(out_dir, exist_ok=True)
  except OSError as e:
    raise OutDirError(f'cannot create --out={out_dir}: {e.strerror or e}.') from e
  if not os.access(out_dir, os.W_OK | os.X_OK):
    raise OutDirError(f'--out={out_dir} is not writable; choose a directory you can write to.')


def run(workdir: str, out_dir: str, step: int | None = None, seed: int = 0) -> list[str]:
  """Restores the checkpoint and writes the figures; returns their paths."""
  state, config, _ = evaluation.load_checkpoint(workdir, step)
  make_out_dir(out_dir)
  return traversal.write_figures(state, config, out_dir, jax.random.PRNGKey(seed))


def main(argv):
  cli.begin(argv)
  if not 0 <= _SEED.value < 2**63:
    cli.fail(f'--seed={_SEED.value} must be in [0, 2**63).')
  paths = run(_WORKDIR.value, _OUT.value, _STEP.value, _SEED.value)
  print('\n'.join(paths))


if __name__ == '__main__':
  cli.run(main)
