r"""Prints one JSON line: the combined step's speed and the input pipeline's.

  python -m experiments.benchmark --config=configs/mnist.py
  python -m experiments.benchmark --config=configs/mnist.py --config.batch_size=256
  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
      python -m experiments.benchmark --config=configs/mnist.py   # 4 host devices

Compare with a PyTorch implementation of the same step run back to back on the same machine
(`experiments/benchmark_suite.sh`).
"""

import json

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


def main(argv):
  del argv
  config = _CONFIG.value
  config_validation.validate(config, check_dataset=False)
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
  app.run(main)
