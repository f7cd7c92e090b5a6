r"""Prints one JSON line: the combined step's speed and the input pipeline's.

With --input_batches=0 (the step alone, on a synthetic device-resident batch)
nothing imports TensorFlow. `experiments.accelerator_benchmark` times every
config's step in one run, for a lent GPU/TPU.

  python -m experiments.benchmark --config=configs/mnist.py:paper
  python -m experiments.benchmark --config=configs/mnist.py:paper --config.batch_size=256
  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
      python -m experiments.benchmark --config=configs/mnist.py:paper   # 4 host devices

Compare with a PyTorch implementation of the same step run back to back on the same machine
(`experiments/benchmark_suite.sh`).
"""

import json

import jax

from absl import app, flags
from ml_collections import config_flags

from experiments import cli
from lgae import benchmark
from lgae.core import config_validation

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
_STEPS = flags.DEFINE_integer('num_steps', 20, 'Timed steps per repeat.')
_MAX_WARMUP = flags.DEFINE_integer('max_warmup', 20, 'Warm-up steps at most: warm-up ends once 3 '
                                   'steps in a row barely page-fault.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Repeats; the best mean is reported.')
_INPUT_BATCHES = flags.DEFINE_integer('input_batches', 200, 'Batches timed for the input pipeline '
                                      '(0 skips it).')
flags.mark_flags_as_required(['config'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  for flag, low in ((_STEPS, 1), (_REPEATS, 1), (_MAX_WARMUP, 0), (_INPUT_BATCHES, 0)):
    if flag.value < low:
      cli.fail(f'--{flag.name}={flag.value} must be >= {low}.')
  # Before anything compiles: the same checks as experiments.main, bar the dataset.
  config = config_validation.loaded_config(_CONFIG)
  config_validation.validate(config, num_devices=jax.device_count(), check_dataset=False)
  result = {'config': config.dataset.name}
  result.update(benchmark.benchmark_step(
      config, num_steps=_STEPS.value, max_warmup=_MAX_WARMUP.value, repeats=_REPEATS.value))
  result['input_images_per_sec'] = None
  if _INPUT_BATCHES.value > 0:
    result.update(_benchmark_input(config, _INPUT_BATCHES.value))
  print(json.dumps(result), flush=True)


def _benchmark_input(config, num_batches: int) -> dict:
  """The input pipeline's images/s, or `input_error` when its data is not prepared."""
  # Imported here, when the pipeline is timed, and only then: it imports
  # TensorFlow, which the step alone (--input_batches=0) must not need.
  from lgae.data import input_pipeline  # pylint: disable=g-import-not-at-top
  try:
    input_pipeline.configure_tensorflow()
    batches = input_pipeline.train_iterator(config)
    return benchmark.benchmark_input(batches, config.batch_size, num_batches=num_batches)
  except input_pipeline.DataNotFoundError as e:
    return {'input_error': str(e).splitlines()[0]}


if __name__ == '__main__':
  # parse_flags: a config file that cannot be loaded or an unknown --config.<field> is one line.
  cli.run(main, flags_parser=config_validation.parse_flags)
