r"""Prints one JSON line: the combined step's speed and the input pipeline's.

  python -m experiments.benchmark --config=configs/mnist.py
  python -m experiments.benchmark --config=configs/mnist.py --config.batch_size=256
  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
      python -m experiments.benchmark --config=configs/mnist.py   # 4 host devices

Compare with a PyTorch implementation of the same step run back to back on the same machine
(`experiments/benchmark_suite.sh`).
"""

import json
import sys

import jax

from absl import app, flags
from ml_collections import config_flags

from lgae import benchmark
from lgae.core import config_validation
from lgae.data import input_pipeline

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
_STEPS = flags.DEFINE_integer('num_steps', 20, 'Timed steps per repeat.')
_MAX_WARMUP = flags.DEFINE_integer('max_warmup', 20, 'Warm-up steps at most: warm-up ends once 3 '
                                   'steps in a row barely page-fault.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Repeats; the best mean is reported.')
_INPUT_BATCHES = flags.DEFINE_integer('input_batches', 200, 'Batches timed for the input pipeline '
                                      '(0 skips it).')
flags.mark_flags_as_required(['config'])


def _error(message: str) -> None:
  print(f'error: {" ".join(str(message).split())}', file=sys.stderr, flush=True)
  sys.exit(1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  for flag, low in ((_STEPS, 1), (_REPEATS, 1), (_MAX_WARMUP, 0), (_INPUT_BATCHES, 0)):
    if flag.value < low:
      _error(f'--{flag.name}={flag.value} must be >= {low}.')
  try:   # Before anything compiles: the same checks as experiments.main, bar the dataset.
    config = config_validation.loaded_config(_CONFIG)
    config_validation.validate(config, num_devices=jax.device_count(), check_dataset=False)
  except config_validation.ConfigError as e:
    print(f'error: {e}', file=sys.stderr, flush=True)   # may list several fields, a line each.
    sys.exit(1)
  result = {'config': config.dataset.name}
  result.update(benchmark.benchmark_step(
      config, num_steps=_STEPS.value, max_warmup=_MAX_WARMUP.value, repeats=_REPEATS.value))
  result['input_images_per_sec'] = None
  if _INPUT_BATCHES.value > 0:
    try:
      result.update(benchmark.benchmark_input(config, num_batches=_INPUT_BATCHES.value))
    except input_pipeline.DataNotFoundError as e:
      result['input_error'] = str(e).splitlines()[0]
  print(json.dumps(result), flush=True)


if __name__ == '__main__':
  # parse_flags: a config file that cannot be loaded or an unknown --config.<field> is one line.
  app.run(main, flags_parser=config_validation.parse_flags)
