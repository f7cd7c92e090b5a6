r"""Prepares a dataset in a tfds data dir from local files (no internet needed).

  python -m experiments.prepare_data --dataset=mnist --source_dir=DIR_WITH_IDX_FILES
  python -m experiments.prepare_data --dataset=fashion_mnist --source_dir=DIR_WITH_IDX_FILES
  python -m experiments.prepare_data --dataset=dsprites   # rendered, no source files
  python -m experiments.prepare_data --dataset=rendered_chairs --source_dir=DIR_WITH_TAR \
      --data_dir=/data/tfds

mnist, fashion_mnist, kmnist: `--source_dir` is a directory holding the
dataset's four IDX gzip files (train-images-idx3-ubyte.gz,
train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
t10k-labels-idx1-ubyte.gz, as published by each dataset); they are checked
(sha256, IDX headers, sizes), then tfds' own dataset of that name is written
(see `lgae.data.mnist_local`).
rendered_chairs: `--source_dir` holds `rendered_chairs.tar` (tfds' manual dir).
dsprites: no `--source_dir`; the 737,280 images are rendered (~8 min, lgae's
`dsprites_procedural`, the dataset of configs/dsprites.py).

`--data_dir` defaults to $TFDS_DATA_DIR, else ~/tensorflow_datasets. Running it
again on a prepared data dir does nothing. Afterwards point training at the
data dir with `export TFDS_DATA_DIR=...` (or `--config.dataset.data_dir=...`).
Other tfds datasets (e.g. CelebA, CIFAR-10) are downloaded by tfds itself when
training starts on a machine with internet; for an offline machine build them
with `tfds build NAME --data_dir=DIR` where there is internet and copy
`DIR/NAME` over.
"""

import functools
import os
import sys

from absl import app, flags

from lgae.data import dsprites_procedural, mnist_local, rendered_chairs

_PREPARERS = {
    **{name: functools.partial(mnist_local.prepare, name=name)
       for name in mnist_local.BUILDERS},
    'rendered_chairs': rendered_chairs.prepare,
}
# Rendered here, from no source files: 'dsprites' is lgae's procedural
# `dsprites_procedural` (configs/dsprites.py), not tfds' download of the release.
_RENDERED = {'dsprites': dsprites_procedural.prepare,
             'dsprites_procedural': dsprites_procedural.prepare}

_DATASET = flags.DEFINE_enum(
    'dataset', None, sorted({**_PREPARERS, **_RENDERED}), 'Which dataset to prepare.')
_SOURCE_DIR = flags.DEFINE_string(
    'source_dir', None,
    'Directory with the source files (mnist, fashion_mnist, kmnist: the four '
    f'IDX files {", ".join(mnist_local.SOURCE_FILES)}; rendered_chairs: '
    'rendered_chairs.tar; dsprites: none, it is rendered).')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None,
    'tfds data dir to write into. Default: $TFDS_DATA_DIR, else '
    '~/tensorflow_datasets.')
flags.mark_flags_as_required(['dataset'])

# Errors a user fixes from the message alone (missing or corrupt source
# files): one line on stderr, no traceback.
_USER_ERRORS = (FileNotFoundError, mnist_local.ChecksumMismatchError)


def default_data_dir() -> str:
  """$TFDS_DATA_DIR if set, else tfds' default ~/tensorflow_datasets."""
  return os.environ.get('TFDS_DATA_DIR') or os.path.join(
      os.path.expanduser('~'), 'tensorflow_datasets')


def prepare(dataset: str, source_dir: str | None, data_dir: str | None = None) -> str:
  """Prepares `dataset` from `source_dir` into `data_dir`; returns its dir."""
  data_dir = os.path.abspath(
      os.path.expanduser(data_dir or default_data_dir()))
  if dataset in _RENDERED:
    return _RENDERED[dataset](data_dir)
  if not source_dir:
    raise FileNotFoundError(f'--dataset={dataset} is prepared from local files: give '
                            '--source_dir=DIR (see --help for the files it must hold).')
  source_dir = os.path.abspath(os.path.expanduser(source_dir))
  if not os.path.isdir(source_dir):
    raise FileNotFoundError(f'--source_dir {source_dir} is not a directory.')
  return _PREPARERS[dataset](source_dir, data_dir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  data_dir = os.path.abspath(
      os.path.expanduser(_DATA_DIR.value or default_data_dir()))
  try:
    dataset_dir = prepare(_DATASET.value, _SOURCE_DIR.value, data_dir)
  except _USER_ERRORS as e:
    message = ' '.join(str(e).split())  # One line, whatever tfds wrote.
    print(f'prepare_data: error: {message}', file=sys.stderr, flush=True)
    sys.exit(1)
  print(f'{_DATASET.value} is prepared in {dataset_dir}\n'
        f'Use it with:\n'
        f'  export TFDS_DATA_DIR={data_dir}\n'
        f'or pass --config.dataset.data_dir={data_dir} to experiments.main.')


if __name__ == '__main__':
  app.run(main)
