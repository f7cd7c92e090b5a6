r"""Dumps Enc(x) of a LatentGAN-AE checkpoint's train and test splits to an .npz.

  python -m experiments.probes.dump_latents --workdir=W --out=lat.npz [--step=N]

Restores W's checkpoint (latest, or --step) read-only and encodes the 'train'
and 'test' splits in stored order with the autoencoder's encoder
(`lgae.methods.latentgan_ae.latent_cache.encode_split`, the stage-2 cache's
own encoding). Writes `--out` with four arrays: ztr [N_train, latent] and ytr
[N_train] (latents and labels of 'train'), zte and yte (of 'test'), the input
of `experiments.probes.umap_ceiling` and `experiments.probes.graph_ceiling`;
prints the two latent shapes. np.savez adds `.npz` to a name without it.

Wrote the latents of the frozen autoencoders `ae_s0` / `ae10_s0` behind the
ceilings of experiments/results/mnist/research/probes_1202/ (NOTES.md; run
there as `scripts/dump_latents.py W out.npz`). Bad input (no checkpoint in W,
a damaged one, a run of another method, data not prepared, a directory for
--out that does not exist) ends with one `error: ...` line and exit code 1,
before anything is written.
"""

import os

import numpy as np
from absl import flags

from experiments import cli
from experiments.probes import _cli
from lgae.data import input_pipeline
from lgae.evaluation import run as evaluation
from lgae.methods.latentgan_ae import latent_cache

_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory of a LatentGAN-AE run.')
_OUT = flags.DEFINE_string('out', None, 'The .npz to write (its directory must exist).')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
flags.mark_flags_as_required(['workdir', 'out'])

SPLITS = ('train', 'test')   # As recorded: the tfds split names, not the run's.

def run(workdir: str, out: str, step: int | None = None) -> dict[str, np.ndarray]:
  """Encodes both splits and writes `out`; returns the four arrays."""
  directory = os.path.dirname(os.path.abspath(out))
  if os.path.exists(directory) and not os.path.isdir(directory):
    raise _cli.InputError(f'--out={out}: {directory} is a file, not a directory.')
  if not os.path.isdir(directory):
    raise _cli.InputError(f'--out={out}: directory {directory} does not exist.')
  try:   # Writable? Before minutes of encoding (and without leaving a file behind).
    existed = os.path.exists(out)
    os.close(os.open(out, os.O_WRONLY | os.O_CREAT, 0o644))
    if not existed:
      os.unlink(out)
  except OSError as e:
    raise _cli.InputError(f'--out={out}: cannot write it ({e.strerror or e}).') from e
  state, config, mesh = evaluation.load_checkpoint(workdir, step)
  if config.model_name != 'latentgan_ae':
    raise _cli.InputError(f'{workdir} holds a run of {config.model_name}; dump_latents encodes '
                          'with the autoencoder of a latentgan_ae run.')
  for split in SPLITS:   # Before any encoding: both splits are there.
    try:
      input_pipeline.num_examples(config, split)
    except (KeyError, ValueError) as e:   # tfds: an unknown split name.
      raise _cli.InputError(f'{config.dataset.name} has no split {split!r} ({e}).') from e
  ztr, ytr = latent_cache.encode_split(state, config, mesh, 'train')
  zte, yte = latent_cache.encode_split(state, config, mesh, 'test')
  np.savez(out, ztr=ztr, ytr=ytr, zte=zte, yte=yte)
  print(ztr.shape, zte.shape)
  return {'ztr': ztr, 'ytr': ytr, 'zte': zte, 'yte': yte}


def main(argv):
  cli.begin(argv)
  run(_WORKDIR.value, _OUT.value, _STEP.value)


if __name__ == '__main__':
  cli.run(main)
