"""Prepares tfds' `mnist` from local IDX files, for machines without internet.

tfds' own `mnist` builder downloads the four IDX files from a mirror when the
dataset is first prepared; offline that fails. `prepare` writes the very same
dataset (name `mnist`, version, features, splits, record keys) from a local
copy of those files, after checking their sha256, so that plain

  tfds.load('mnist', data_dir=data_dir, download=False)

reads it afterwards with no lgae code involved.

How: `_OfflineMnist` subclasses tfds' `MNIST` builder with
`skip_registration=True` and `name = 'mnist'`. It inherits `_info` (features,
version, homepage, citation) unchanged and only replaces where the bytes come
from: `_split_generators` hands over arrays parsed from the local files instead
of calling `dl_manager.download_and_extract`. Everything that tfds writes
(`dataset_info.json`, `features.json`, the tfrecord shards and their names) is
thus produced by tfds itself, and reading goes through the registered `MNIST`
class exactly as for a downloaded copy.
"""

import gzip
import hashlib
import inspect
import os
import struct
import tempfile
from collections.abc import Mapping

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.image_classification import mnist as tfds_mnist

# The four files of the original MNIST release, keyed by their role.
TRAIN_IMAGES = 'train-images-idx3-ubyte.gz'
TRAIN_LABELS = 'train-labels-idx1-ubyte.gz'
TEST_IMAGES = 't10k-images-idx3-ubyte.gz'
TEST_LABELS = 't10k-labels-idx1-ubyte.gz'
_SPLIT_FILES = {
    'train': (TRAIN_IMAGES, TRAIN_LABELS),
    'test': (TEST_IMAGES, TEST_LABELS),
}

# sha256 of the *decompressed* IDX bytes (shared/data/mnist/README.md).
# We hash the decompressed bytes, not the .gz files, because gzip output
# depends on the compressor (level, mtime, file name) while the IDX payload is
# what defines the dataset.
MNIST_SHA256 = {
    TRAIN_IMAGES:
        'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
    TRAIN_LABELS:
        '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
    TEST_IMAGES:
        '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
    TEST_LABELS:
        'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
}

# IDX header: 2 zero bytes, a dtype code (0x08 = uint8), the number of dims.
_IDX_UINT8 = 0x08


class ChecksumMismatchError(ValueError):
  """A source file's decompressed content is not the expected MNIST file."""


class _OfflineMnist(tfds_mnist.MNIST, skip_registration=True):
  """tfds' `MNIST` builder fed from in-memory arrays instead of a download.

  `skip_registration=True` because the name `mnist` is already registered by
  tfds (registering it twice raises); this class is only ever used to *write*
  the dataset, reading uses tfds' registered `MNIST`.
  """

  name = 'mnist'

  def __init__(
      self,
      *,
      splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
      **kwargs,
  ):
    """Initializes the builder.

    Args:
      splits: split name -> (uint8 images [N, 28, 28], int labels [N]).
      **kwargs: forwarded to `tfds.core.DatasetBuilder` (e.g. `data_dir`).
    """
    self._source_arrays = splits
    super().__init__(**kwargs)

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # tfds 4.9.10's `DatasetBuilder.code_path` references the
    # `importlib_resources` backport, which it only declares as a dependency
    # for Python < 3.9; on 3.11 without it, `download_and_prepare` dies with
    # ModuleNotFoundError. This is the value tfds computes when it works.
    return epath.Path(inspect.getfile(cls))

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the arrays are already in memory.
    return [
        tfds.core.SplitGenerator(
            name=name, gen_kwargs=dict(images=images, labels=labels)
        )
        for name, (images, labels) in self._source_arrays.items()
    ]

  def _generate_examples(self, images, labels):  # pylint: disable=arguments-differ
    # Same records and keys (the index) as tfds' `MNIST._generate_examples`,
    # so the shuffled-by-key order on disk matches a downloaded copy.
    for index, (image, label) in enumerate(zip(images, labels)):
      yield index, {'image': image[..., None], 'label': int(label)}


def _read_verified(path: str, expected_sha256: str | None) -> bytes:
  """Returns the decompressed bytes of `path`, checking their sha256."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'MNIST source file not found: {path}')
  try:
    with gzip.open(path, 'rb') as f:
      data = f.read()
  except (OSError, EOFError) as e:  # Not gzip, or truncated.
    raise ChecksumMismatchError(
        f'MNIST source file {path} is not a valid gzip file: {e}'
    ) from e
  if expected_sha256 is not None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
      raise ChecksumMismatchError(
          f'MNIST source file {path}: sha256 of the decompressed bytes is '
          f'{actual}, expected {expected_sha256}. The file is corrupt or not '
          'the original MNIST file.'
      )
  return data


def _parse_idx(data: bytes, path: str) -> np.ndarray:
  """Parses an IDX uint8 array (the format of the MNIST files)."""
  if len(data) < 4:
    raise ChecksumMismatchError(f'{path}: too short to be an IDX file.')
  zero, dtype_code, ndim = struct.unpack('>HBB', data[:4])
  if zero != 0 or dtype_code != _IDX_UINT8:
    raise ChecksumMismatchError(f'{path}: not a uint8 IDX file.')
  header_size = 4 + 4 * ndim
  shape = struct.unpack(f'>{ndim}I', data[4:header_size])
  payload = np.frombuffer(data, dtype=np.uint8, offset=header_size)
  if payload.size != int(np.prod(shape)):
    raise ChecksumMismatchError(
        f'{path}: header says shape {shape} but holds {payload.size} bytes.'
    )
  return payload.reshape(shape)


def read_source(
    source_dir: str,
    expected_sha256: Mapping[str, str] | None = MNIST_SHA256,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Reads and checks the four MNIST IDX gzip files of `source_dir`.

  Args:
    source_dir: directory holding the four `*-idx?-ubyte.gz` files.
    expected_sha256: file name -> sha256 of its decompressed bytes. `None`
      skips the check; meant only for tests that use tiny fake files.

  Returns:
    {'train': (images, labels), 'test': (images, labels)}; images are uint8
    [N, 28, 28], labels uint8 [N].

  Raises:
    FileNotFoundError: a file is missing (the message names it).
    ChecksumMismatchError: a file is corrupt, has the wrong sha256, or its
      images and labels disagree.
  """
  # Check presence of all four first, so one run reports every missing file.
  missing = [
      name
      for files in _SPLIT_FILES.values()
      for name in files
      if not os.path.isfile(os.path.join(source_dir, name))
  ]
  if missing:
    raise FileNotFoundError(
        f'MNIST source file(s) not found in {source_dir}: {", ".join(missing)}'
    )
  splits = {}
  for split, (images_name, labels_name) in _SPLIT_FILES.items():
    arrays = []
    for name in (images_name, labels_name):
      path = os.path.join(source_dir, name)
      sha = None if expected_sha256 is None else expected_sha256[name]
      arrays.append(_parse_idx(_read_verified(path, sha), path))
    images, labels = arrays
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1:
      raise ChecksumMismatchError(
          f'{images_name}/{labels_name}: unexpected shapes {images.shape}, '
          f'{labels.shape}; expected [N, 28, 28] and [N].'
      )
    if len(images) != len(labels):
      raise ChecksumMismatchError(
          f'{images_name} has {len(images)} images but {labels_name} has '
          f'{len(labels)} labels.'
      )
    splits[split] = (images, labels)
  return splits


def prepare(
    source_dir: str,
    data_dir: str,
    expected_sha256: Mapping[str, str] | None = MNIST_SHA256,
) -> str:
  """Writes tfds' `mnist` into `data_dir` from the local IDX files.

  Idempotent: if `data_dir` already holds a prepared `mnist` of the current
  version, returns at once without reading `source_dir`.

  Args:
    source_dir: directory with the four MNIST `*.gz` IDX files.
    data_dir: tfds data dir to write into (what `tfds.load(data_dir=...)` and
      `$TFDS_DATA_DIR` point at).
    expected_sha256: file name -> sha256 of the decompressed bytes; defaults
      to the real MNIST. `None` disables the check (tests only).

  Returns:
    The prepared dataset directory, `<data_dir>/mnist/<version>`.

  Raises:
    FileNotFoundError: a source file is missing.
    ChecksumMismatchError: a source file is corrupt or not the MNIST file.
  """
  # A builder without splits is enough to know where the data would live.
  builder = _OfflineMnist(splits={}, data_dir=data_dir)
  # The test tfds' `download_and_prepare` itself uses to reuse a dataset (it
  # writes into a temporary dir and renames it when complete).
  if builder.data_path.exists():
    return os.fspath(builder.data_dir)
  # Verify everything before tfds creates any directory, so a bad source
  # leaves `data_dir` untouched.
  splits = read_source(source_dir, expected_sha256)
  builder = _OfflineMnist(splits=splits, data_dir=data_dir)
  # tfds creates (empty) `downloads/extracted` dirs under `download_dir`;
  # nothing is downloaded, so keep them out of the user's data dir.
  with tempfile.TemporaryDirectory(prefix='lgae_mnist_') as download_dir:
    builder.download_and_prepare(
        download_dir=download_dir,
        # Never look for a pre-built copy online.
        download_config=tfds.download.DownloadConfig(try_download_gcs=False),
    )
  return os.fspath(builder.data_dir)
