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
(sha256 of the decompressed content, or of the .gz as published; IDX headers,
sizes, labels), then tfds' own dataset of that name is written
(see `lgae.data.mnist_local`).
rendered_chairs: `--source_dir` holds `rendered_chairs.tar` (tfds' manual dir).
dsprites: no `--source_dir`; the 737,280 images are rendered (~8 min, lgae's
`dsprites_procedural`, the dataset of configs/dsprites.py).

`--data_dir` defaults to $TFDS_DATA_DIR, else ~/tensorflow_datasets; it must be
a directory (created if missing) that can be written to. Running it again on a
prepared data dir does nothing, and says so. Every bad input (a missing or
corrupt source file, an unusable data dir, an unknown dataset, ...) is one
`error: ...` line on stderr and exit code 1, and leaves the data dir as it was.
Afterwards point training at the data dir with `export TFDS_DATA_DIR=...`
(or `--config.dataset.data_dir=...`).
Other tfds datasets (e.g. CelebA, CIFAR-10) are downloaded by tfds itself when
training starts on a machine with internet; for an offline machine build them
with `tfds build NAME --data_dir=DIR` where there is internet and copy
`DIR/NAME` over.
"""

import functools
import os
import tempfile

from absl import flags

from experiments import cli
from lgae import errors
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


class SourceDirError(errors.UserError, FileNotFoundError):
  """`--source_dir` is missing, not given, or not a directory."""


class DataDirError(errors.UserError, OSError):
  """`--data_dir` is not a directory that can be written to."""


class IncompleteDatasetError(errors.UserError, FileExistsError):
  """The dataset's directory exists in the data dir but is not a prepared dataset."""


def default_data_dir() -> str:
  """$TFDS_DATA_DIR if set, else tfds' default ~/tensorflow_datasets."""
  return os.environ.get('TFDS_DATA_DIR') or os.path.join(
      os.path.expanduser('~'), 'tensorflow_datasets')


def _resolve(data_dir: str | None) -> str:
  return os.path.abspath(os.path.expanduser(data_dir or default_data_dir()))


def _empty_builder(dataset: str, data_dir: str):
  """The tfds builder `dataset` is written with, without data: where it lives."""
  if dataset in mnist_local.BUILDERS:
    return mnist_local.empty_builder(dataset, data_dir)
  if dataset == 'rendered_chairs':
    return rendered_chairs.RenderedChairs(data_dir=data_dir)
  return dsprites_procedural.DspritesProcedural(data_dir=data_dir, config='full')


def _nearest_existing(path: str) -> str:
  while not os.path.lexists(path):
    path = os.path.dirname(path)
  return path


def check_data_dir_kind(data_dir: str) -> None:
  """Refuses a `data_dir` that is (or lies under) something other than a directory."""
  existing = _nearest_existing(data_dir)
  if not os.path.isdir(existing):
    what = 'is' if existing == data_dir else f'lies under {existing}, which is'
    raise DataDirError(f'--data_dir {data_dir} {what} not a directory. Give a '
                       'directory (it is created if missing).')


def check_data_dir_writable(data_dir: str) -> None:
  """Refuses a `data_dir` where nothing can be created (read-only, /proc, no permission).

  Tries it: creates and removes an empty directory in `data_dir`, or, if
  `data_dir` does not exist yet, in its nearest existing parent (which is
  where tfds will create it); nothing else is touched.
  """
  check_data_dir_kind(data_dir)
  existing = _nearest_existing(data_dir)
  try:
    os.rmdir(tempfile.mkdtemp(prefix='.lgae_write_test_', dir=existing))
  except OSError as e:
    where = '' if existing == data_dir else f' (it would be created in {existing})'
    raise DataDirError(
        f'--data_dir {data_dir} is not writable{where}: cannot create anything in '
        f'{existing} ({e.strerror or e}). Choose a directory you can write to.') from e


def prepared_dir(dataset: str, data_dir: str) -> str | None:
  """The directory of `dataset` if `data_dir` already holds it prepared, else None.

  Raises:
    IncompleteDatasetError: the dataset's version directory exists but holds
      no `dataset_info.json` (tfds writes that directory complete, in one
      rename; this one was left by something else, e.g. a partial copy).
  """
  builder = _empty_builder(dataset, data_dir)
  if not builder.data_path.exists():
    return None
  if not (builder.data_path / 'dataset_info.json').exists():
    raise IncompleteDatasetError(
        f'{builder.data_path} exists but is not a prepared {dataset} (it has no '
        'dataset_info.json, e.g. a partial copy). Move it out of the way and run '
        'again; nothing was changed.')
  return os.fspath(builder.data_dir)


def _missing_dirs(path: str) -> list[str]:
  """The directories from `path` up that do not exist yet, deepest first."""
  missing = []
  while not os.path.lexists(path):
    missing.append(path)
    path = os.path.dirname(path)
  return missing


def prepare(dataset: str, source_dir: str | None, data_dir: str | None = None) -> str:
  """Prepares `dataset` from `source_dir` into `data_dir`; returns its dir.

  Everything is checked before anything is written: the data dir (a
  directory, or creatable, and writable) and the source files. On a failure,
  the data dir is left as it was: tfds writes into a temporary directory that
  it renames when complete and removes otherwise, and the (empty) directories
  created for it here are removed too.
  """
  data_dir = _resolve(data_dir)
  check_data_dir_kind(data_dir)
  existing = prepared_dir(dataset, data_dir)
  if existing is not None:
    return existing
  check_data_dir_writable(data_dir)
  if dataset in _RENDERED:
    preparer = functools.partial(_RENDERED[dataset], data_dir)
  else:
    if not source_dir:
      raise SourceDirError(f'--dataset={dataset} is prepared from local files: give '
                           '--source_dir=DIR (see --help for the files it must hold).')
    source_dir = os.path.abspath(os.path.expanduser(source_dir))
    if not os.path.isdir(source_dir):
      what = 'is a file, not a directory' if os.path.exists(source_dir) else (
          'does not exist (it is not a directory)')
      raise SourceDirError(f'--source_dir {source_dir} {what}.')
    preparer = functools.partial(_PREPARERS[dataset], source_dir, data_dir)
  created = _missing_dirs(os.fspath(_empty_builder(dataset, data_dir).data_path.parent))
  try:
    return preparer()
  except BaseException:
    for path in created:  # Deepest first; only empty ones, so nothing is lost.
      try:
        os.rmdir(path)
      except OSError:
        pass
    raise


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with every usage error one `error:` line (exit code 1)."""
  try:
    argv = flags.FLAGS(argv)
  except flags.Error as e:
    cli.fail(e)
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}: give every setting as a flag '
             '(--dataset, --source_dir, --data_dir; see --help).')
  return argv


def main(argv):
  del argv  # Checked by _parse_flags.
  dataset = _DATASET.value
  data_dir = _resolve(_DATA_DIR.value)
  check_data_dir_kind(data_dir)
  existing = prepared_dir(dataset, data_dir)
  if existing is not None:
    print(f'{dataset} is already prepared in {existing}; nothing to do.')
  else:
    existing = prepare(dataset, _SOURCE_DIR.value, data_dir)
    print(f'{dataset} is prepared in {existing}')
  print(f'Use it with:\n'
        f'  export TFDS_DATA_DIR={data_dir}\n'
        f'or pass --config.dataset.data_dir={data_dir} to experiments.main.')


if __name__ == '__main__':
  cli.run(main, flags_parser=_parse_flags)
