"""Prepares tfds' MNIST-family datasets from local IDX files, offline.

tfds' `mnist`, `fashion_mnist` and `kmnist` builders download the same four
IDX gzip files (`SOURCE_FILES`) from their mirrors when a dataset is first
prepared; offline that fails. `prepare` writes the very same dataset (name,
version, features, splits, record keys) from a local copy of those files,
after checking them, so that plain

  tfds.load('fashion_mnist', data_dir=data_dir, download=False)

reads it afterwards with no lgae code involved.

How: for each name, a subclass of tfds' own builder (`MNIST`, `FashionMNIST`,
`KMNIST`) with `skip_registration=True` and the same `name`. It inherits
`_info` (features, version, homepage, citation) unchanged and only replaces
where the bytes come from: `_split_generators` hands over arrays parsed from
the local files instead of calling `dl_manager.download_and_extract`.
Everything that tfds writes (`dataset_info.json`, `features.json`, the tfrecord
shards and their names) is thus produced by tfds itself, and reading goes
through the registered builder exactly as for a downloaded copy.

Checks: every file must be a gzip of a uint8 IDX array with the family's
shapes (images [N, 28, 28], labels [N], N equal). With the recorded checksums
(the default), a file must also match its sha256: for `mnist` lgae's own
record of the decompressed bytes; for the others the sha256 of the .gz files
that tfds records for its downloads (shipped with tfds, so known offline).
"""

import gzip
import hashlib
import functools
import inspect
import os
import struct
import tempfile
from collections.abc import Mapping

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.image_classification import mnist as tfds_mnist

# The tfds builders that read these four IDX files, by tfds name. (EMNIST
# also uses IDX files, but named per config, inside one zip, and transposed.)
BUILDERS: dict[str, type[tfds.core.GeneratorBasedBuilder]] = {
    'mnist': tfds_mnist.MNIST,
    'fashion_mnist': tfds_mnist.FashionMNIST,
    'kmnist': tfds_mnist.KMNIST,
}

# The four files of the original MNIST release, keyed by their role.
TRAIN_IMAGES = 'train-images-idx3-ubyte.gz'
TRAIN_LABELS = 'train-labels-idx1-ubyte.gz'
TEST_IMAGES = 't10k-images-idx3-ubyte.gz'
TEST_LABELS = 't10k-labels-idx1-ubyte.gz'
_SPLIT_FILES = {
    'train': (TRAIN_IMAGES, TRAIN_LABELS),
    'test': (TEST_IMAGES, TEST_LABELS),
}
SOURCE_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
# Examples per split of every dataset in BUILDERS (all drop-in MNISTs).
_SPLIT_SIZES = {'train': 60_000, 'test': 10_000}

# sha256 of the *decompressed* IDX bytes of the original MNIST release.
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


# Default of `expected_sha256`: the checksums recorded for the dataset.
RECORDED = 'recorded'


class ChecksumMismatchError(ValueError):
  """A source file is corrupt or not the expected file of the dataset."""


class _FromArrays:
  """Mixin for an MNIST-family tfds builder: in-memory arrays, no download.

  Only ever combined with a tfds builder by `_offline_builder`.
  """

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


@functools.cache
def _offline_builder(name: str) -> type[tfds.core.GeneratorBasedBuilder]:
  """tfds' builder of `name`, fed by `_FromArrays` instead of a download.

  `skip_registration=True` because `name` is already registered by tfds
  (registering it twice raises); the class is only ever used to *write* the
  dataset, reading uses tfds' registered builder.
  """
  if name not in BUILDERS:
    raise ValueError(f'{name!r} is not prepared from IDX files; known: '
                     f'{", ".join(sorted(BUILDERS))}.')
  base = BUILDERS[name]
  return type(f'_Offline{base.__name__}', (_FromArrays, base),
              {'name': name, '__module__': __name__}, skip_registration=True)


def recorded_sha256(name: str) -> dict[str, str] | None:
  """The sha256 every source file of `name` must have, or None if unknown.

  mnist: lgae's record of the decompressed IDX bytes. Others: the sha256 of
  the .gz files as tfds records them for its own downloads (a file shipped
  inside the tfds package, read here without any network).
  """
  if name == 'mnist':
    return dict(MNIST_SHA256)
  # tfds' checksum record of these legacy builders, one line per URL:
  # url, size, sha256, file name. (`builder.url_infos` would find it too, but
  # goes through `code_path`, see above.)
  path = tfds.core.utils.tfds_path() / 'url_checksums' / f'{name}.txt'
  if not path.exists():
    return None
  infos = tfds.core.download.checksums.load_url_infos(path)
  sha256 = {url.rsplit('/', 1)[-1]: info.checksum
            for url, info in infos.items()}
  return sha256 if set(SOURCE_FILES) <= set(sha256) else None


def _read_verified(path: str, expected_sha256: str | None) -> bytes:
  """Returns the decompressed bytes of `path`, checking their sha256.

  The file passes if the sha256 of either its gzip bytes or its decompressed
  bytes is `expected_sha256`: records of both kinds exist (see
  `recorded_sha256`), and a sha256 match of either identifies the file.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Source file not found: {path}')
  with open(path, 'rb') as f:
    raw = f.read()
  try:
    data = gzip.decompress(raw)
  except (OSError, EOFError) as e:  # Not gzip, or truncated.
    raise ChecksumMismatchError(
        f'Source file {path} is not a valid gzip file: {e}'
    ) from e
  if expected_sha256 is not None:
    actual = {hashlib.sha256(b).hexdigest() for b in (raw, data)}
    if expected_sha256 not in actual:
      raise ChecksumMismatchError(
          f'Source file {path}: sha256 is {hashlib.sha256(raw).hexdigest()} '
          f'(decompressed: {hashlib.sha256(data).hexdigest()}), expected '
          f'{expected_sha256}. The file is corrupt or not the original file.'
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
  if len(data) < header_size:
    raise ChecksumMismatchError(f'{path}: IDX header is truncated.')
  shape = struct.unpack(f'>{ndim}I', data[4:header_size])
  payload = np.frombuffer(data, dtype=np.uint8, offset=header_size)
  if payload.size != int(np.prod(shape)):
    raise ChecksumMismatchError(
        f'{path}: header says shape {shape} but holds {payload.size} bytes.'
    )
  return payload.reshape(shape)


def _resolve_sha256(
    name: str, expected_sha256: Mapping[str, str] | str | None
) -> Mapping[str, str] | None:
  if expected_sha256 != RECORDED:
    return expected_sha256
  return recorded_sha256(name)


def read_source(
    source_dir: str,
    expected_sha256: Mapping[str, str] | str | None = RECORDED,
    name: str = 'mnist',
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Reads and checks the four IDX gzip files of `name` in `source_dir`.

  Args:
    source_dir: directory holding the four `*-idx?-ubyte.gz` files.
    expected_sha256: file name -> sha256 of its gzip or decompressed bytes;
      `RECORDED` (default): `recorded_sha256(name)`, which also fixes the
      split sizes (60000/10000); `None` skips both checks, meant only for
      tests that use tiny fake files.
    name: a tfds name in `BUILDERS`.

  Returns:
    {'train': (images, labels), 'test': (images, labels)}; images are uint8
    [N, 28, 28], labels uint8 [N].

  Raises:
    FileNotFoundError: a file is missing (the message names it).
    ChecksumMismatchError: a file is corrupt, has the wrong sha256, or its
      images and labels disagree.
  """
  _offline_builder(name)  # Unknown names fail before any file is read.
  recorded = expected_sha256 == RECORDED
  expected_sha256 = _resolve_sha256(name, expected_sha256)
  # Check presence of all four first, so one run reports every missing file.
  missing = [
      file_name
      for file_name in SOURCE_FILES
      if not os.path.isfile(os.path.join(source_dir, file_name))
  ]
  if missing:
    raise FileNotFoundError(
        f'{name} source file(s) not found in {source_dir}: '
        f'{", ".join(missing)} (needed: the four IDX files '
        f'{", ".join(SOURCE_FILES)}).'
    )
  splits = {}
  for split, (images_name, labels_name) in _SPLIT_FILES.items():
    arrays = []
    for file_name in (images_name, labels_name):
      path = os.path.join(source_dir, file_name)
      sha = None if expected_sha256 is None else expected_sha256[file_name]
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
    # Without a checksum (none recorded), the sizes are what is left to
    # tell a complete copy from a truncated or foreign one.
    if recorded and len(images) != _SPLIT_SIZES[split]:
      raise ChecksumMismatchError(
          f'{images_name}: {len(images)} examples, but {name} {split!r} has '
          f'{_SPLIT_SIZES[split]}.'
      )
    splits[split] = (images, labels)
  return splits


def prepare(
    source_dir: str,
    data_dir: str,
    expected_sha256: Mapping[str, str] | str | None = RECORDED,
    name: str = 'mnist',
) -> str:
  """Writes tfds' `name` into `data_dir` from its local IDX files.

  Idempotent: if `data_dir` already holds a prepared `name` of the current
  version, returns at once without reading `source_dir`.

  Args:
    source_dir: directory with the four `*.gz` IDX files (`SOURCE_FILES`).
    data_dir: tfds data dir to write into (what `tfds.load(data_dir=...)` and
      `$TFDS_DATA_DIR` point at).
    expected_sha256: see `read_source`; defaults to the recorded checksums.
      `None` disables the checks (tests only).
    name: a tfds name in `BUILDERS` ('mnist', 'fashion_mnist', 'kmnist').

  Returns:
    The prepared dataset directory, `<data_dir>/<name>/<version>`.

  Raises:
    FileNotFoundError: a source file is missing.
    ChecksumMismatchError: a source file is corrupt or not the right file.
  """
  builder_class = _offline_builder(name)
  # A builder without splits is enough to know where the data would live.
  builder = builder_class(splits={}, data_dir=data_dir)
  # The test tfds' `download_and_prepare` itself uses to reuse a dataset (it
  # writes into a temporary dir and renames it when complete).
  if builder.data_path.exists():
    return os.fspath(builder.data_dir)
  # Verify everything before tfds creates any directory, so a bad source
  # leaves `data_dir` untouched.
  splits = read_source(source_dir, expected_sha256, name)
  builder = builder_class(splits=splits, data_dir=data_dir)
  # tfds creates (empty) `downloads/extracted` dirs under `download_dir`;
  # nothing is downloaded, so keep them out of the user's data dir.
  with tempfile.TemporaryDirectory(prefix=f'lgae_{name}_') as download_dir:
    builder.download_and_prepare(
        download_dir=download_dir,
        # Never look for a pre-built copy online.
        download_config=tfds.download.DownloadConfig(try_download_gcs=False),
    )
  return os.fspath(builder.data_dir)
