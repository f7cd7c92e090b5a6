"""Offline dataset preparation: local MNIST IDX files and the chairs archive.

Everything is built from tiny fake sources in tmp dirs; nothing touches the
network. The real MNIST is also prepared and checked (~20 s) when its four
.gz files are found: in $LGAE_REAL_MNIST_DIR, else in the development
workshop beside this repository (../shared/data/mnist, present in CI).
"""

import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import prepare_data
from lgae.data import mnist_local, rendered_chairs
from tests import fake_mnist as fake_mnist_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_TRAIN, NUM_TEST = 20, 10


def _write_fake_mnist(source_dir):
  """Writes 20 train + 10 test random digits.

  Returns:
    ({split: (images, labels)}, {file name: sha256 of its IDX bytes}).
  """
  rng = np.random.default_rng(0)
  arrays, sha256 = {}, {}
  for split, prefix, n in (('train', 'train', NUM_TRAIN),
                           ('test', 't10k', NUM_TEST)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    arrays[split] = (images, labels)
    for kind, array in (('images-idx3', images), ('labels-idx1', labels)):
      name = f'{prefix}-{kind}-ubyte.gz'
      data = fake_mnist_lib.idx_bytes(array)
      with gzip.open(os.path.join(source_dir, name), 'wb') as f:
        f.write(data)
      sha256[name] = hashlib.sha256(data).hexdigest()
  return arrays, sha256


@pytest.fixture
def fake_mnist(tmp_path):
  source = tmp_path / 'source'
  source.mkdir()
  arrays, sha256 = _write_fake_mnist(str(source))
  return str(source), arrays, sha256


def _as_pairs(ds):
  return sorted((ex['image'].tobytes(), int(ex['label']))
                for ex in tfds.as_numpy(ds))


# -----------------------------------------------------------------------------
# MNIST.
# -----------------------------------------------------------------------------


def test_prepared_mnist_is_tfds_mnist(fake_mnist, tmp_path):
  source, arrays, sha256 = fake_mnist
  data_dir = str(tmp_path / 'tfds')
  dataset_dir = mnist_local.prepare(source, data_dir, expected_sha256=sha256)
  assert dataset_dir == os.path.join(data_dir, 'mnist', '3.0.1')

  # Plain tfds, no lgae code: same name, version, features and splits as
  # tfds' own `mnist`, and exactly our images paired with our labels.
  splits, info = tfds.load('mnist', data_dir=data_dir, download=False,
                           split=['train', 'test'], with_info=True)
  reference = tfds.builder('mnist', data_dir=str(tmp_path / 'empty')).info
  assert info.version == reference.version
  assert info.features.to_json() == reference.features.to_json()
  assert info.supervised_keys == reference.supervised_keys
  assert info.splits['train'].num_examples == NUM_TRAIN
  assert info.splits['test'].num_examples == NUM_TEST
  for ds, split in zip(splits, ('train', 'test')):
    images, labels = arrays[split]
    expected = sorted((image[..., None].tobytes(), int(label))
                      for image, label in zip(images, labels))
    assert _as_pairs(ds) == expected


def test_prepare_is_idempotent_and_then_ignores_source(fake_mnist, tmp_path):
  source, _, _ = fake_mnist
  data_dir = str(tmp_path / 'tfds')
  first = mnist_local.prepare(source, data_dir, expected_sha256=None)
  for name in os.listdir(source):  # A prepared dataset needs no source.
    os.remove(os.path.join(source, name))
  assert mnist_local.prepare(source, data_dir, expected_sha256=None) == first


def test_checksum_mismatch_names_the_file(fake_mnist, tmp_path):
  source, _, sha256 = fake_mnist
  sha256 = dict(sha256, **{mnist_local.TEST_LABELS: '0' * 64})
  data_dir = tmp_path / 'tfds'
  with pytest.raises(mnist_local.ChecksumMismatchError,
                     match=mnist_local.TEST_LABELS):
    mnist_local.prepare(source, str(data_dir), expected_sha256=sha256)
  # Verified before writing: nothing half-prepared is left behind.
  assert not (data_dir / 'mnist').exists()


def test_fake_files_fail_the_real_checksums(fake_mnist, tmp_path):
  source, _, _ = fake_mnist
  with pytest.raises(mnist_local.ChecksumMismatchError, match='sha256'):
    mnist_local.prepare(source, str(tmp_path / 'tfds'))  # Real MNIST sha256.


def test_missing_file_is_named(fake_mnist, tmp_path):
  source, _, _ = fake_mnist
  os.remove(os.path.join(source, mnist_local.TRAIN_LABELS))
  with pytest.raises(FileNotFoundError, match=mnist_local.TRAIN_LABELS):
    mnist_local.prepare(source, str(tmp_path / 'tfds'), expected_sha256=None)


def test_cli_prepare_resolves_tfds_data_dir(fake_mnist, tmp_path, monkeypatch):
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'from_env'))
  assert prepare_data.default_data_dir() == str(tmp_path / 'from_env')
  monkeypatch.delenv('TFDS_DATA_DIR')
  assert prepare_data.default_data_dir() == os.path.expanduser(
      '~/tensorflow_datasets')
  with pytest.raises(FileNotFoundError, match='not a directory'):
    prepare_data.prepare('mnist', str(tmp_path / 'nope'), str(tmp_path))


def test_real_mnist(real_mnist_dir):
  # The published label counts of MNIST's train and test splits.
  expected = {
      'train': [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
      'test': [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
  }
  for split, counts in expected.items():
    ds, info = tfds.load('mnist', data_dir=real_mnist_dir, download=False,
                         split=split, with_info=True)
    assert info.splits[split].num_examples == sum(counts)
    labels = next(iter(tfds.as_numpy(ds.map(lambda ex: ex['label'])
                                      .batch(sum(counts)))))
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), counts)


# -----------------------------------------------------------------------------
# Content (decompressed) vs container (.gz) checksums.
# -----------------------------------------------------------------------------


def _recompress(path, level=9, mtime=12345, edit=None):
  """Re-compresses `path` in place (as `zcat f | gzip -9 > f`); returns the new .gz sha256.

  `edit(bytes) -> bytes`, if given, alters the decompressed content first.
  """
  with gzip.open(path, 'rb') as f:
    data = f.read()
  if edit is not None:
    data = edit(data)
  with open(path, 'rb') as f:
    old = f.read()
  new = gzip.compress(data, compresslevel=level, mtime=mtime)
  assert new != old  # A different container...
  with open(path, 'wb') as f:
    f.write(new)
  return hashlib.sha256(new).hexdigest()


@pytest.fixture
def fake_sizes(monkeypatch):
  """The fake files' split sizes stand in for the real 60000/10000."""
  monkeypatch.setattr(mnist_local, '_SPLIT_SIZES', {'train': NUM_TRAIN, 'test': NUM_TEST})


def test_recorded_forms():
  mnist = mnist_local.recorded_checksums('mnist')
  fashion = mnist_local.recorded_checksums('fashion_mnist')
  kmnist = mnist_local.recorded_checksums('kmnist')
  gz = {name: mnist_local._tfds_container_sha256(name)  # pylint: disable=protected-access
        for name in ('fashion_mnist', 'kmnist')}
  for file_name in mnist_local.SOURCE_FILES:
    # MNIST as before: its decompressed content only.
    assert mnist[file_name] == mnist_local.Checksums(
        content=mnist_local.MNIST_SHA256[file_name], container=None)
    # Fashion-MNIST: the content, and tfds' .gz record as a second form.
    assert fashion[file_name] == mnist_local.Checksums(
        content=mnist_local.FASHION_MNIST_SHA256[file_name],
        container=gz['fashion_mnist'][file_name])
    # KMNIST: no content record, the container only.
    assert kmnist[file_name] == mnist_local.Checksums(
        content=None, container=gz['kmnist'][file_name])


def test_recompressed_fashion_mnist_passes_on_its_content(fake_mnist, fake_sizes,
                                                          monkeypatch):
  source, arrays, content_sha256 = fake_mnist
  # The fake files' content hashes stand in for the real Fashion-MNIST's;
  # the container hashes stay tfds' record of the real .gz files.
  monkeypatch.setitem(mnist_local.CONTENT_SHA256, 'fashion_mnist', content_sha256)
  recorded_gz = mnist_local.recorded_checksums('fashion_mnist')
  for name in mnist_local.SOURCE_FILES:
    gz_sha256 = _recompress(os.path.join(source, name))
    assert gz_sha256 != recorded_gz[name].container  # Only the content can match.
  splits = mnist_local.read_source(source, name='fashion_mnist')
  for split, (images, labels) in arrays.items():
    np.testing.assert_array_equal(splits[split][0], images)
    np.testing.assert_array_equal(splits[split][1], labels)


def test_container_hash_is_a_second_accepted_form(fake_mnist):
  source, _, content_sha256 = fake_mnist
  with open(os.path.join(source, mnist_local.TRAIN_LABELS), 'rb') as f:
    gz_sha256 = hashlib.sha256(f.read()).hexdigest()
  expected = {name: mnist_local.Checksums(content=sha, container='0' * 64)
              for name, sha in content_sha256.items()}
  # A wrong content record, but the container as published: accepted.
  expected[mnist_local.TRAIN_LABELS] = mnist_local.Checksums(
      content='1' * 64, container=gz_sha256)
  mnist_local.read_source(source, expected, name='fashion_mnist')


def test_corrupt_content_is_refused_naming_content_and_container(
    fake_mnist, fake_sizes, monkeypatch, tmp_path):
  del fake_sizes
  source, _, content_sha256 = fake_mnist
  monkeypatch.setitem(mnist_local.CONTENT_SHA256, 'fashion_mnist', content_sha256)
  path = os.path.join(source, mnist_local.TRAIN_IMAGES)
  # One pixel changed: same size and header, different content.
  gz_sha256 = _recompress(path, edit=lambda d: d[:100] + bytes([d[100] ^ 1]) + d[101:])
  with gzip.open(path, 'rb') as f:
    actual = hashlib.sha256(f.read()).hexdigest()
  recorded = mnist_local.recorded_checksums('fashion_mnist')[mnist_local.TRAIN_IMAGES]
  data_dir = tmp_path / 'tfds'
  with pytest.raises(mnist_local.ChecksumMismatchError) as error:
    prepare_data.prepare('fashion_mnist', source, str(data_dir))
  message = str(error.value)
  assert message.startswith(f'Source file {path}: ')
  assert (f'sha256 is {actual} for the content (the decompressed IDX bytes), expected '
          f'{content_sha256[mnist_local.TRAIN_IMAGES]}') in message
  assert (f'the container (the .gz file) has sha256 {gz_sha256}, expected '
          f'{recorded.container}') in message
  assert not data_dir.exists()


def test_recompressed_kmnist_is_accepted_on_its_structure_with_a_warning(
    fake_mnist, fake_sizes, monkeypatch):
  del fake_sizes
  source, arrays, _ = fake_mnist
  for name in mnist_local.SOURCE_FILES:
    _recompress(os.path.join(source, name))
  warnings = []
  monkeypatch.setattr(mnist_local.logging, 'warning',
                      lambda fmt, *args: warnings.append(fmt % args))
  splits = mnist_local.read_source(source, name='kmnist')
  np.testing.assert_array_equal(splits['test'][1], arrays['test'][1])
  (warning,) = warnings
  assert 'kmnist: the content of 4 source file(s) could not be hash-verified' in warning
  assert 'for the container (the .gz file), expected' in warning


@pytest.mark.parametrize('corrupt, expected', [
    ('label', 'label 10 is out of range; kmnist labels are 0..9'),
    ('size', "20 examples, but kmnist 'train' has 60000"),
])
def test_kmnist_with_a_wrong_structure_is_refused_naming_the_container(
    fake_mnist, monkeypatch, corrupt, expected):
  source, _, _ = fake_mnist
  if corrupt == 'label':  # The last label of the test split becomes 10.
    monkeypatch.setattr(mnist_local, '_SPLIT_SIZES', {'train': NUM_TRAIN, 'test': NUM_TEST})
    _recompress(os.path.join(source, mnist_local.TEST_LABELS),
                edit=lambda d: d[:-1] + bytes([10]))
  recorded = mnist_local.recorded_checksums('kmnist')
  with pytest.raises(mnist_local.ChecksumMismatchError) as error:
    mnist_local.read_source(source, name='kmnist')
  message = str(error.value)
  assert expected in message
  assert (f'{mnist_local.TRAIN_IMAGES}: sha256 is ') in message
  assert (f'for the container (the .gz file), expected '
          f'{recorded[mnist_local.TRAIN_IMAGES].container}') in message


def test_a_failure_while_writing_leaves_the_data_dir_as_it_was(fake_mnist, tmp_path,
                                                               monkeypatch):
  source, _, _ = fake_mnist
  data_dir = tmp_path / 'tfds'
  (data_dir / 'other').mkdir(parents=True)
  (data_dir / 'other' / 'keep.txt').write_text('mine')
  before = _snapshot(data_dir)
  builder_class = mnist_local._offline_builder('kmnist')  # pylint: disable=protected-access
  def failing(self, images, labels):
    del self
    yield 0, {'image': images[0][..., None], 'label': int(labels[0])}
    raise RuntimeError('disk trouble halfway')
  monkeypatch.setattr(builder_class, '_generate_examples', failing)
  monkeypatch.setattr(mnist_local, 'recorded_checksums', lambda name: None)
  monkeypatch.setattr(mnist_local, '_SPLIT_SIZES', {'train': NUM_TRAIN, 'test': NUM_TEST})
  with pytest.raises(RuntimeError, match='disk trouble halfway'):
    prepare_data.prepare('kmnist', source, str(data_dir))
  # No partial dataset, no empty dirs: exactly what was there.
  assert _snapshot(data_dir) == before


# -----------------------------------------------------------------------------
# The command line: every bad input is one `error:` line, exit code 1, and the
# data dir is left byte for byte as it was.
# -----------------------------------------------------------------------------


def _snapshot(root):
  """Every directory and file under root, with each file's bytes and mtime."""
  out = {}
  for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames:
      out[os.path.join(dirpath, name)] = 'dir'
    for name in filenames:
      path = os.path.join(dirpath, name)
      with open(path, 'rb') as f:
        out[path] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns)
  return out


def _cli(*args, as_unprivileged=False):
  command = [sys.executable, '-m', 'experiments.prepare_data', *args]
  if as_unprivileged and os.geteuid() == 0:
    # Root writes anywhere; without these capabilities file modes apply.
    setpriv = shutil.which('setpriv')
    if setpriv is None:
      pytest.skip('running as root without setpriv: cannot drop the right to write anywhere')
    command = [setpriv, '--inh-caps=-all', '--ambient-caps=-all',
               '--bounding-set=-dac_override,-dac_read_search', *command]
  return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                        timeout=120, check=False)


def _one_error_line(result):
  assert result.returncode == 1, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1, result.stderr[-3000:]
  return errors[0]


@pytest.fixture(scope='module')
def prepared_data_dir(tmp_path_factory):
  """A data dir already holding a (fake) prepared mnist and a file of the user's."""
  root = tmp_path_factory.mktemp('prepared')
  source = root / 'source'
  source.mkdir()
  _write_fake_mnist(str(source))
  data_dir = root / 'tfds'
  mnist_local.prepare(str(source), str(data_dir), expected_sha256=None)
  (data_dir / 'notes.txt').write_text('the user\'s own file')
  return data_dir


def _bad_source(tmp_path, kind):
  source = tmp_path / 'source'
  if kind == 'missing':
    return source
  if kind == 'a file':
    source.write_text('not a directory')
    return source
  source.mkdir()
  if kind == 'lacking files':
    return source
  _write_fake_mnist(str(source))
  if kind == 'truncated gzip':
    path = source / mnist_local.TRAIN_IMAGES
    path.write_bytes(path.read_bytes()[:-100])
  return source  # 'not the real content': fake files under the real name.


@pytest.mark.parametrize('kind, expected', [
    ('missing', 'does not exist'),
    ('a file', 'is a file, not a directory'),
    ('lacking files', rf'source file\(s\) not found in .*: {mnist_local.TRAIN_IMAGES}'),
    ('truncated gzip', f'{mnist_local.TRAIN_IMAGES} is not a valid gzip file'),
    ('not the real content',
     f'{mnist_local.TRAIN_IMAGES}: sha256 is [0-9a-f]{{64}} for the content '
     r'\(the decompressed IDX bytes\), expected '
     f'{mnist_local.FASHION_MNIST_SHA256[mnist_local.TRAIN_IMAGES]}; the container '
     r'\(the .gz file\) has sha256 [0-9a-f]{64}, expected '),
])
def test_cli_bad_source_dir_is_one_line(prepared_data_dir, tmp_path, kind, expected):
  source = _bad_source(tmp_path, kind)
  before = _snapshot(prepared_data_dir)
  result = _cli('--dataset=fashion_mnist', f'--source_dir={source}',
                f'--data_dir={prepared_data_dir}')
  line = _one_error_line(result)
  assert re.search(expected, line), line
  assert _snapshot(prepared_data_dir) == before


@pytest.mark.parametrize('args, expected', [
    (['--dataset=mnist_fashion'], 'error: flag --dataset=mnist_fashion: value should be one of'),
    (['--dataset=fashion_mnist', 'now'], "error: unexpected arguments ['now']"),
])
def test_cli_bad_arguments_are_one_line(prepared_data_dir, tmp_path, args, expected):
  before = _snapshot(prepared_data_dir)
  source = _bad_source(tmp_path, 'lacking files')
  result = _cli(*args, f'--source_dir={source}', f'--data_dir={prepared_data_dir}')
  assert _one_error_line(result).startswith(expected)
  assert _snapshot(prepared_data_dir) == before


@pytest.mark.parametrize('kind', ['a file', 'under a file', 'not writable', 'under /proc',
                                  'an incomplete dataset'])
def test_cli_unusable_data_dir_is_one_line_and_untouched(tmp_path, kind):
  source = tmp_path / 'source'
  source.mkdir()
  _write_fake_mnist(str(source))  # Good files: the data dir is what is wrong.
  data_dir = tmp_path / 'data'
  watched = tmp_path
  if kind in ('a file', 'under a file'):
    data_dir.write_text('a file')
    expected = 'is not a directory' if kind == 'a file' else 'which is not a directory'
    if kind == 'under a file':
      data_dir = data_dir / 'tfds'
  elif kind == 'not writable':
    data_dir.mkdir()
    (data_dir / 'keep.txt').write_text('mine')
    data_dir.chmod(0o555)
    expected = 'is not writable: cannot create anything in'
  elif kind == 'under /proc':
    data_dir = '/proc/lgae_tfds'
    expected = 'is not writable (it would be created in /proc)'
  else:  # A version dir left by something else, without tfds' dataset_info.json.
    (data_dir / 'mnist' / '3.0.1').mkdir(parents=True)
    (data_dir / 'mnist' / '3.0.1' / 'mnist-train.tfrecord-00000-of-00001').write_text('x')
    expected = 'exists but is not a prepared mnist'
  before = _snapshot(watched)
  try:
    result = _cli('--dataset=mnist', f'--source_dir={source}', f'--data_dir={data_dir}',
                  as_unprivileged=(kind == 'not writable'))
  finally:
    if kind == 'not writable':
      data_dir.chmod(0o755)
  assert expected in _one_error_line(result)
  assert _snapshot(watched) == before


def test_cli_rerun_on_a_prepared_dir_does_nothing_and_says_so(prepared_data_dir, tmp_path):
  before = _snapshot(prepared_data_dir)
  # No source needed (and an empty one is not even read).
  result = _cli('--dataset=mnist', f'--source_dir={tmp_path}',
                f'--data_dir={prepared_data_dir}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert (f'mnist is already prepared in {prepared_data_dir / "mnist" / "3.0.1"}; '
          'nothing to do.') in result.stdout
  assert 'error' not in result.stderr.lower()
  assert _snapshot(prepared_data_dir) == before


# -----------------------------------------------------------------------------
# Rendered chairs.
# -----------------------------------------------------------------------------


def _png(mode, size=600):
  """A 600x600 render: a black 200x200 square in the middle of a background.

  RGB: white background. RGBA: *transparent black* background, which must
  come out white, not black.
  """
  pil_image = tfds.core.lazy_imports.PIL_Image
  background = (255, 255, 255) if mode == 'RGB' else (0, 0, 0, 0)
  image = pil_image.new(mode, (size, size), background)
  square = (0, 0, 0) if mode == 'RGB' else (0, 0, 0, 255)
  image.paste(pil_image.new(mode, (200, 200), square), (200, 200))
  buffer = io.BytesIO()
  image.save(buffer, format='PNG')
  return buffer.getvalue()


def _add(tar, name, data):
  member = tarfile.TarInfo(name)
  member.size = len(data)
  tar.addfile(member, io.BytesIO(data))


@pytest.fixture
def chairs_source(tmp_path):
  source = tmp_path / 'chairs_source'
  source.mkdir()
  with tarfile.open(source / rendered_chairs.ARCHIVE_NAME, 'w') as tar:
    _add(tar, 'rendered_chairs/all_chair_names.mat', b'not an image')
    for chair, mode in (('chair_a', 'RGB'), ('chair_b', 'RGBA')):
      for view in ('image_000_p020_t000_r096.png',
                   'image_001_p020_t011_r096.png'):
        _add(tar, f'rendered_chairs/{chair}/renders/{view}', _png(mode))
  return str(source)


def test_rendered_chairs_builder(chairs_source, tmp_path):
  data_dir = str(tmp_path / 'tfds')
  dataset_dir = rendered_chairs.prepare(chairs_source, data_dir)
  assert dataset_dir.startswith(os.path.join(data_dir, 'rendered_chairs'))
  ds = tfds.load('rendered_chairs', split='train', data_dir=data_dir,
                 download=False)
  examples = list(tfds.as_numpy(ds))
  assert sorted((ex['chair_id'], ex['filename']) for ex in examples) == [
      (chair, view) for chair in (b'chair_a', b'chair_b')
      for view in (b'image_000_p020_t000_r096.png',
                   b'image_001_p020_t011_r096.png')]
  for ex in examples:
    image = ex['image']
    assert image.shape == (64, 64, 1) and image.dtype == np.uint8
    # The central 400x400 crop maps the 200x200 square at [200, 400) to
    # [16, 48) of the 64x64 image; the rest is the white background.
    np.testing.assert_array_equal(image[16:48, 16:48], 0)
    assert image[:15].min() == 255 and image[49:].min() == 255
    assert image[:, :15].min() == 255 and image[:, 49:].min() == 255


def test_rendered_chairs_missing_archive(tmp_path):
  with pytest.raises(FileNotFoundError, match=rendered_chairs.ARCHIVE_NAME):
    rendered_chairs.prepare(str(tmp_path), str(tmp_path / 'tfds'))


def test_rendered_chairs_corrupt_render_is_one_error_and_leaves_nothing(tmp_path):
  source = tmp_path / 'chairs_source'
  source.mkdir()
  with tarfile.open(source / rendered_chairs.ARCHIVE_NAME, 'w') as tar:
    _add(tar, 'rendered_chairs/chair_a/renders/image_000_p020_t000_r096.png', _png('RGB'))
    _add(tar, 'rendered_chairs/chair_b/renders/image_001_p020_t011_r096.png', b'not a png')
  data_dir = tmp_path / 'tfds'
  data_dir.mkdir()
  before = _snapshot(data_dir)
  with pytest.raises(rendered_chairs.CorruptArchiveError,
                     match='chair_b/renders/image_001_p020_t011_r096.png is not a readable image'):
    prepare_data.prepare('rendered_chairs', str(source), str(data_dir))
  assert _snapshot(data_dir) == before
