r"""Trains a LatentGAN Autoencoder.

  python -m experiments.main --config=configs/mnist.py --workdir=/tmp/mnist
  python -m experiments.main --config=configs/mnist.py --config.num_train_steps=200 --config.seed=3

Any config field can be overridden as --config.<field>=<value>. Without
--workdir, a stable directory derived from the config is used (and printed),
so re-running the same command resumes. This is the only file with flags; the
library entry point is `lgae.train.train_and_evaluate(config, workdir)`.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from lgae import checkpointing, config_validation, input_pipeline, train

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Path to a config file, e.g. configs/mnist.py (or configs/mnist.py:smoke).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Run directory (checkpoints, metrics.jsonl, TensorBoard). Default: '
    'lgae_runs/<dataset>_seed<seed>_<config hash>.')
flags.mark_flags_as_required(['config'])

# Errors a user can fix from the message alone: print it, no traceback.
_USER_ERRORS = (config_validation.ConfigError, input_pipeline.DataNotFoundError,
                checkpointing.CheckpointError, train.NonFiniteLossError)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  workdir = _WORKDIR.value
  if not workdir:
    workdir = train.default_workdir(config)
    print(f'No --workdir given; using {workdir}', flush=True)
  logging.info('Config:\n%s', config)
  # Orbax's event loop closes before some callbacks after a failed restore;
  # keep the one-line error below readable.
  checkpointing.silence_closed_event_loop_callbacks()
  try:
    train.train_and_evaluate(config, workdir)
  except _USER_ERRORS as e:
    print(f'error: {e}', file=sys.stderr, flush=True)
    sys.exit(1)


def run():
  """The command line entry point (also used by tests that fork it)."""
  # parse_flags: an unknown --config.<field> is a one-line usage error.
  app.run(main, flags_parser=config_validation.parse_flags)


if __name__ == '__main__':
  run()
