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


def test_cli_missing_source_is_one_line_and_nonzero(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.prepare_data', '--dataset=mnist',
       f'--source_dir={tmp_path}', f'--data_dir={tmp_path / "tfds"}'],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 1
  assert 'Traceback' not in result.stderr
  errors = [line for line in result.stderr.splitlines()
            if line.startswith('prepare_data: error:')]
  assert len(errors) == 1 and mnist_local.TRAIN_IMAGES in errors[0]


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
