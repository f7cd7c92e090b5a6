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
shapes (images [N, 28, 28], labels [N] in 0..9, N equal). With the recorded
checksums (the default), a file is identified by the sha256 of its *content*,
the decompressed IDX bytes, which do not depend on how the file was
compressed: a copy re-compressed (`zcat f | gzip -9 > g`) passes. The sha256
of the *container* as published (the .gz file, which tfds records for its own
downloads and ships, so known offline) is a second accepted form. Recorded:

  mnist          content (lgae's record); container not needed.
  fashion_mnist  content (see FASHION_MNIST_SHA256) and container (tfds).
  kmnist         container only (tfds): no public record of the content's
                 sha256 was found. A KMNIST file whose container differs
                 (re-compressed) is accepted on its structure alone (IDX
                 header, shapes, 60000/10000 examples, labels 0..9), with a
                 warning that its content could not be hash-verified.

With the recorded checksums, the split sizes (60000/10000) must hold too.
"""

import dataclasses
import functools
import gzip
import hashlib
import inspect
import os
import struct
import tempfile
import zlib
from collections.abc import Mapping

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath
from tensorflow_datasets.image_classification import mnist as tfds_mnist

from lgae import errors

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

# sha256 of the *decompressed* IDX bytes of Fashion-MNIST (zalandoresearch,
# the release whose .gz files tfds records). Stated, with the MNIST hashes
# above alongside (which match lgae's own record), in
# EntroMorphic/sstt:Makefile (`SHA256F_*`, checked after `gunzip -k`) and in
# filip137/drn-server-code:labs/fashion_eqprop_data.py (`RAW_SHA256`, "derived
# from archives matching the publisher's gzip MD5 checksums"); two other
# public loaders that decompress the published files state the same four.
FASHION_MNIST_SHA256 = {
    TRAIN_IMAGES:
        'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888',
    TRAIN_LABELS:
        'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
    TEST_IMAGES:
        '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b',
    TEST_LABELS:
        '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34',
}

# The content sha256 recorded per dataset (kmnist: none found, see the module
# docstring).
CONTENT_SHA256: dict[str, dict[str, str]] = {
    'mnist': MNIST_SHA256,
    'fashion_mnist': FASHION_MNIST_SHA256,
}
# Datasets whose container sha256 (tfds' record of the .gz files) is accepted
# as a second form. Not mnist: its content record alone is what it always was.
_CONTAINER_ACCEPTED = ('fashion_mnist', 'kmnist')

_NUM_CLASSES = 10

# IDX header: 2 zero bytes, a dtype code (0x08 = uint8), the number of dims.
_IDX_UINT8 = 0x08


# Default of `expected_sha256`: the checksums recorded for the dataset.
RECORDED = 'recorded'


class ChecksumMismatchError(errors.UserError, ValueError):
  """A source file is corrupt or not the expected file of the dataset."""


class SourceNotFoundError(errors.UserError, FileNotFoundError):
  """A source file (or the source directory) is missing."""


@dataclasses.dataclass(frozen=True)
class Checksums:
  """The sha256 a source file may match; either one identifies it.

  Attributes:
    content: sha256 of the decompressed IDX bytes (independent of how the
      file was compressed), or None if unknown.
    container: sha256 of the .gz file as published, or None if unknown.
  """
  content: str | None = None
  container: str | None = None


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


def _tfds_container_sha256(name: str) -> dict[str, str] | None:
  """sha256 of the four .gz files as tfds records them, or None if unknown."""
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


def empty_builder(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  """The builder of `name` in `data_dir`, without data: where it would live."""
  return _offline_builder(name)(splits={}, data_dir=data_dir)


def recorded_checksums(name: str) -> dict[str, Checksums] | None:
  """What each source file of `name` must match (see module doc), or None.

  mnist: lgae's record of the content. fashion_mnist: the content
  (FASHION_MNIST_SHA256) or the container as tfds records it. kmnist: the
  container only.
  """
  content = CONTENT_SHA256.get(name)
  container = (_tfds_container_sha256(name)
               if name in _CONTAINER_ACCEPTED else None)
  if content is None and container is None:
    return None
  return {
      file_name: Checksums(
          content=None if content is None else content[file_name],
          container=None if container is None else container[file_name])
      for file_name in SOURCE_FILES
  }


def recorded_sha256(name: str) -> dict[str, str] | None:
  """The main recorded sha256 of each source file of `name`, or None.

  The content's where one is recorded (mnist, fashion_mnist), else the
  container's (kmnist); `recorded_checksums` has both forms.
  """
  checksums = recorded_checksums(name)
  if checksums is None:
    return None
  return {file_name: c.content or c.container
          for file_name, c in checksums.items()}


def _as_checksums(expected: 'Checksums | str | None') -> Checksums | None:
  # A bare string may be either form (what callers recorded: tests pass the
  # sha256 of their fake files' IDX bytes or of the .gz files).
  if isinstance(expected, str):
    return Checksums(content=expected, container=expected)
  return expected


def _read_verified(
    path: str, expected: 'Checksums | str | None'
) -> tuple[bytes, str | None]:
  """Returns the decompressed bytes of `path`, and why they are unverified.

  The file passes if the sha256 of its content (decompressed bytes) or of
  its container (the .gz bytes) is the expected one. If neither matches:
  with a content sha256 expected, it is refused; with only a container
  sha256 expected (no record of the content), it may still pass on its
  structure, which the caller checks: the second value then says which
  hash did not match (None when the file was identified by a hash, or
  nothing was expected).
  """
  if not os.path.isfile(path):
    raise SourceNotFoundError(f'Source file not found: {path}')
  with open(path, 'rb') as f:
    raw = f.read()
  try:
    data = gzip.decompress(raw)
  except (OSError, EOFError, zlib.error) as e:  # Not gzip, or truncated.
    raise ChecksumMismatchError(
        f'Source file {path} is not a valid gzip file: {e}'
    ) from e
  expected = _as_checksums(expected)
  if expected is None:
    return data, None
  content = hashlib.sha256(data).hexdigest()
  container = hashlib.sha256(raw).hexdigest()
  if content == expected.content or container == expected.container:
    return data, None
  container_text = (
      f'the container (the .gz file) has sha256 {container}, expected '
      f'{expected.container}')
  if expected.content is not None:
    if expected.container is None:
      container_text = 'no container sha256 is recorded'
    elif expected.container == expected.content:  # A bare string, either form.
      container_text = f'nor is it the container\'s (the .gz file), {container}'
    raise ChecksumMismatchError(
        f'Source file {path}: sha256 is {content} for the content (the '
        f'decompressed IDX bytes), expected {expected.content}; '
        f'{container_text}. The file is corrupt or not the original file.'
    )
  return data, (
      f'Source file {path}: sha256 is {container} for the container (the .gz '
      f'file), expected {expected.container}, and no sha256 of the content '
      f'(the decompressed IDX bytes) is recorded'
  )


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


Expected = Mapping[str, 'Checksums | str'] | str | None


def _resolve_sha256(
    name: str, expected_sha256: Expected
) -> Mapping[str, 'Checksums | str'] | None:
  if expected_sha256 != RECORDED:
    return expected_sha256
  return recorded_checksums(name)


def _check_structure(
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    name: str,
    check_sizes: bool,
) -> None:
  """Shapes, matching counts, labels 0..9 and (if asked) the split sizes."""
  for split, (images, labels) in splits.items():
    images_name, labels_name = _SPLIT_FILES[split]
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
    if labels.size and labels.max() >= _NUM_CLASSES:
      raise ChecksumMismatchError(
          f'{labels_name}: label {int(labels.max())} is out of range; '
          f'{name} labels are 0..{_NUM_CLASSES - 1}.'
      )
    # Where no hash identified the files (kmnist re-compressed, or no record
    # at all), the sizes are what is left to tell a complete copy from a
    # truncated or foreign one; where one did, they hold anyway.
    if check_sizes and len(images) != _SPLIT_SIZES[split]:
      raise ChecksumMismatchError(
          f'{images_name}: {len(images)} examples, but {name} {split!r} has '
          f'{_SPLIT_SIZES[split]}.'
      )


def read_source(
    source_dir: str,
    expected_sha256: Expected = RECORDED,
    name: str = 'mnist',
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Reads and checks the four IDX gzip files of `name` in `source_dir`.

  Args:
    source_dir: directory holding the four `*-idx?-ubyte.gz` files.
    expected_sha256: file name -> `Checksums` (the sha256 of its content,
      i.e. decompressed bytes, and/or of its .gz container), or a bare
      sha256 that may be either; `RECORDED` (default):
      `recorded_checksums(name)`, which also fixes the split sizes
      (60000/10000); `None` skips both checks, meant only for tests that use
      tiny fake files.
    name: a tfds name in `BUILDERS`.

  Returns:
    {'train': (images, labels), 'test': (images, labels)}; images are uint8
    [N, 28, 28], labels uint8 [N].

  Raises:
    SourceNotFoundError: a file is missing (the message names it).
    ChecksumMismatchError: a file is corrupt, has the wrong sha256, or its
      images and labels disagree (the message says which sha256 was
      compared, content or container, and what was expected).
  """
  _offline_builder(name)  # Unknown names fail before any file is read.
  recorded = expected_sha256 == RECORDED
  expected_sha256 = _resolve_sha256(name, expected_sha256)
  if not os.path.isdir(source_dir):
    raise SourceNotFoundError(
        f'{name} source directory {source_dir} is not a directory (it should '
        f'hold the four IDX files {", ".join(SOURCE_FILES)}).')
  # Check presence of all four first, so one run reports every missing file.
  missing = [
      file_name
      for file_name in SOURCE_FILES
      if not os.path.isfile(os.path.join(source_dir, file_name))
  ]
  if missing:
    raise SourceNotFoundError(
        f'{name} source file(s) not found in {source_dir}: '
        f'{", ".join(missing)} (needed: the four IDX files '
        f'{", ".join(SOURCE_FILES)}).'
    )
  splits, unverified = {}, []
  try:
    for split, file_names in _SPLIT_FILES.items():
      arrays = []
      for file_name in file_names:
        path = os.path.join(source_dir, file_name)
        sha = None if expected_sha256 is None else expected_sha256[file_name]
        data, why_unverified = _read_verified(path, sha)
        if why_unverified:
          unverified.append(why_unverified)
        arrays.append(_parse_idx(data, path))
      splits[split] = tuple(arrays)
    _check_structure(splits, name, check_sizes=recorded)
  except ChecksumMismatchError as e:
    if not unverified:
      raise
    # No hash identified the file(s), and the structure is wrong: say both.
    raise ChecksumMismatchError(
        f'{"; ".join(unverified)}; and {e} The file is corrupt or not the '
        'original file.') from e
  if unverified:
    sizes = (f'{"/".join(str(n) for n in _SPLIT_SIZES.values())} examples, '
             if recorded else '')
    logging.warning(
        '%s: the content of %d source file(s) could not be hash-verified '
        '(their .gz container is not the published one, e.g. re-compressed, '
        'and no sha256 of the decompressed files is recorded); accepted on '
        'their structure alone (IDX headers, shapes, %slabels 0..9). %s',
        name, len(unverified), sizes, ' '.join(f'{u}.' for u in unverified))
  return splits


def prepare(
    source_dir: str,
    data_dir: str,
    expected_sha256: Expected = RECORDED,
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
    SourceNotFoundError: a source file is missing.
    ChecksumMismatchError: a source file is corrupt or not the right file.
  """
  builder_class = _offline_builder(name)
  builder = empty_builder(name, data_dir)
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
