r"""Trains (or resumes) a run of any lgae method from a config file.

  python -m experiments.main --config=configs/mnist.py --workdir=/tmp/mnist
  python -m experiments.main --config=configs/mnist.py:paper --config.num_train_steps=200 --config.seed=3

Several processes (hosts) train one run together: start the same command in
each with --coordinator_address, --num_processes and --process_id (or under
SLURM's srun / on a Cloud TPU slice, with none; README "Multiple processes"; experiments/docs/reliability.md).

Any config field can be overridden as --config.<field>=<value>. Without
--workdir, a stable directory derived from the config is used (and printed),
so re-running the same command resumes. This is the only file with flags; the
library entry point is `lgae.train.train_and_evaluate(config, workdir)`.
"""

import jax
from absl import flags, logging
from ml_collections import config_flags

from experiments import cli
from lgae import train
from lgae.core import config_validation, parallel

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Path to a config file, e.g. configs/mnist.py (or configs/mnist.py:smoke).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Run directory (checkpoints, metrics.jsonl, TensorBoard). Default: '
    'lgae_runs/<dataset>_seed<seed>_<config hash>.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'Multi-process runs: HOST:PORT of process 0, the same on '
    'every process. Default: read from SLURM / Cloud TPU, else one process.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Multi-process runs: how many.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'Multi-process runs: this one, 0..N-1.')
_ALLOW_NEW_DATA = flags.DEFINE_bool(
    'allow_new_data', False, 'Resume a workdir whose run was trained on another dataset or train '
    'split, on this config\'s data (fine-tuning). Without it that is refused.')
flags.mark_flags_as_required(['config'])


def main(argv):
  cli.begin(argv)
  config = config_validation.loaded_config(_CONFIG)
  # Before anything touches a JAX device.
  parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if jax.process_index() > 0 and not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)   # Process 0 reports progress for all.
  run_dir = _WORKDIR.value
  if not run_dir:
    run_dir = train.default_workdir(config)
    logging.info('No --workdir given; using %s', run_dir)
  # The full config is saved beside every checkpoint; on the console only when asked.
  logging.debug('Config:\n%s', config)
  # A user error (lgae.errors.UserError) or a refused path is one `error:` line (experiments.cli).
  train.train_and_evaluate(config, run_dir, allow_new_data=_ALLOW_NEW_DATA.value)


def run():
  """The command line entry point (also used by tests that fork it)."""
  # parse_flags: an unknown --config.<field> is a one-line usage error.
  cli.run(main, flags_parser=config_validation.parse_flags)


if __name__ == '__main__':
  run()
