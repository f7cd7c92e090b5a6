"""Any tfds image dataset by name; downloads, and the offline routes.

Nothing here touches the network: datasets are mocked (`tfds.testing.mock_data`)
or prepared from tiny IDX files written in tmp dirs, and every download is
either replaced by a fake or stopped by a failing name lookup, with the real
downloader also made to fail at once in case the code ever reaches it.
"""

import functools
import gzip
import hashlib
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import requests
import tensorflow_datasets as tfds

from configs import celeba, chairs, mnist
from experiments import prepare_data
from lgae.core import config_validation
from lgae.data import input_pipeline
from lgae.evaluation import run as evaluation
from lgae.data import mnist_local
from tests import fake_mnist

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_MOCK = 40
BATCH = 16  # The smoke batch size.


def _config(name, image_size=32, channels=1, crop=0, resize='resize'):
  """The MNIST smoke config pointed at another tfds dataset, as on the CLI."""
  config = mnist.get_config('smoke')
  config.dataset.name = name
  config.dataset.image_size = image_size
  config.dataset.channels = channels
  config.dataset.crop = crop
  config.dataset.resize = resize
  return config


# -----------------------------------------------------------------------------
# Generic preprocessing on mocked tfds datasets of different shapes.
# -----------------------------------------------------------------------------

# name, config overrides, expected batch shape, has class labels. Stored
# shapes: mnist/fashion_mnist 28x28x1, cifar10 and svhn_cropped 32x32x3,
# celeb_a 218x178x3.
GENERIC = [
    ('mnist', dict(resize='pad'), (BATCH, 32, 32, 1), True),
    ('fashion_mnist', dict(resize='pad'), (BATCH, 32, 32, 1), True),
    ('cifar10', dict(channels=3), (BATCH, 32, 32, 3), True),
    ('cifar10', dict(channels=1), (BATCH, 32, 32, 1), True),   # RGB -> grey.
    ('svhn_cropped', dict(channels=3, image_size=16), (BATCH, 16, 16, 3), True),
    ('celeb_a', dict(channels=3, crop=140), (BATCH, 32, 32, 3), False),
]


@pytest.mark.parametrize('name, overrides, shape, labelled', GENERIC,
                         ids=[f'{g[0]}-{g[2][1]}x{g[2][3]}' for g in GENERIC])
def test_any_tfds_image_dataset_by_name(name, overrides, shape, labelled):
  config = _config(name, **overrides)
  assert input_pipeline.has_class_labels(config) == labelled
  with tfds.testing.mock_data(num_examples=NUM_MOCK,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    train = next(input_pipeline.train_iterator(config))
    evals = list(input_pipeline.eval_iterator(config))
  for batch in [train] + evals:
    assert batch['image'].shape[1:] == shape[1:]
    assert batch['image'].dtype == np.float32 and batch['label'].dtype == np.int32
    assert -1.0 <= batch['image'].min() and batch['image'].max() <= 1.0
  assert train['image'].shape == shape
  assert train['image'].std() > 0.01  # Random mock pixels, not a constant.
  num_classes = (input_pipeline.dataset_features(config)['label'].num_classes
                 if labelled else 1)
  labels = np.concatenate([b['label'][b['mask'] > 0] for b in evals])
  assert len(labels) == NUM_MOCK and set(labels) <= set(range(num_classes))
  if labelled:  # The mocked classes themselves, not a constant.
    assert len(set(train['label'])) > 1
  else:
    np.testing.assert_array_equal(train['label'], 0)
  if overrides.get('resize') == 'pad':  # 28 -> 32: a 2-pixel background border.
    np.testing.assert_array_equal(train['image'][:, :2], -1.0)
    np.testing.assert_array_equal(train['image'][:, :, -2:], -1.0)


@pytest.mark.parametrize('get_config, labelled', [
    (functools.partial(mnist.get_config, 'smoke'), True),
    (functools.partial(_config, 'kmnist'), True),
    (functools.partial(_config, 'cifar100', channels=3), True),
    (functools.partial(celeba.get_config, 'smoke'), False),
    # A `chair_id` string, no ClassLabel.
    (functools.partial(chairs.get_config, 'smoke'), False),
], ids=['mnist', 'kmnist', 'cifar100', 'celeb_a', 'rendered_chairs'])
def test_class_labels_come_from_the_tfds_features(get_config, labelled):
  config = get_config()
  config.dataset.data_dir = '/nonexistent/tfds'  # Features need no data.
  assert evaluation.has_class_labels(config) == labelled


def test_generic_configs_pass_validation(monkeypatch):
  # Not prepared here: validation reads features from the builders' code and
  # must neither download nor complain.
  downloads = []
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare',
                      lambda builder, *a, **kw: downloads.append(builder.name))
  for config in (_config('fashion_mnist', resize='pad'), _config('cifar10', channels=3),
                 _config('celeb_a', channels=3, crop=140)):
    config.dataset.data_dir = '/nonexistent/tfds'
    config_validation.validate(config, num_devices=4)
  assert downloads == []


# -----------------------------------------------------------------------------
# Downloads.
# -----------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
  """Name lookups fail (as offline) and the real downloader fails at once."""
  def no_lookup(*args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')
  def no_get(*args, **kwargs):
    raise AssertionError('the test reached the network')
  monkeypatch.setattr(socket, 'getaddrinfo', no_lookup)
  monkeypatch.setattr(requests.Session, 'get', no_get)
  monkeypatch.setattr('urllib.request.getproxies', dict)


def _loaders(config):
  return (input_pipeline.check_available, input_pipeline.steps_per_epoch,
          input_pipeline.train_iterator, input_pipeline.eval_iterator)


def test_offline_download_is_one_clear_error_at_once(tmp_path, no_network):
  # tfds' real downloader, unmocked: the name lookup of its hosts fails, so
  # the run stops at once (tfds itself would retry for minutes).
  config = _config('kmnist', resize='pad')
  config.dataset.data_dir = str(tmp_path)
  for load in _loaders(config):
    with pytest.raises(input_pipeline.DataNotFoundError) as error:
      load(config)
    message = str(error.value)
    assert 'downloading it failed: cannot resolve codh.rois.ac.jp' in message
    assert (f'python -m experiments.prepare_data --dataset=kmnist --source_dir=DIR '
            f'--data_dir={tmp_path}') in message
    for name in mnist_local.SOURCE_FILES:  # The files it needs.
      assert name in message
  assert os.listdir(tmp_path) == []  # Nothing half-downloaded left behind.


def test_failing_download_is_one_error_naming_the_cause(tmp_path, monkeypatch):
  calls = []
  def offline_download(builder, *args, **kwargs):
    calls.append(builder.name)
    raise requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='www.cs.toronto.edu'): Max retries exceeded\nmore")
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', offline_download)
  config = _config('cifar10', channels=3)
  config.dataset.data_dir = str(tmp_path)
  with pytest.raises(input_pipeline.DataNotFoundError) as error:
    input_pipeline.check_available(config)
  message = str(error.value)
  assert calls == ['cifar10']
  assert ('is not prepared in the tfds data dir ' + str(tmp_path) +
          ', and downloading it failed: ConnectionError: HTTPSConnectionPool') in message
  assert 'more' not in message  # One line of the cause, not tfds' whole story.
  assert 'tfds build cifar10 --data_dir=DIR' in message
  assert isinstance(error.value.__cause__, requests.exceptions.ConnectionError)


def test_download_false_never_downloads(tmp_path, monkeypatch):
  def forbidden(*args, **kwargs):
    raise AssertionError('downloaded although dataset.download=False')
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', forbidden)
  config = _config('fashion_mnist', resize='pad')
  config.dataset.data_dir = str(tmp_path)
  config.dataset.download = False
  for load in _loaders(config):
    with pytest.raises(input_pipeline.DataNotFoundError,
                       match=r'downloading is off \(config\.dataset\.download=False\)'):
      load(config)
  assert os.listdir(tmp_path) == []


def _write_idx_source(source_dir, num_train=20, num_test=10, seed=0):
  """Four IDX gzip files; returns {file name: sha256 of the .gz bytes}."""
  fake_mnist.write_source(str(source_dir), num_train, num_test, seed=seed)
  sha256 = {}
  for name in mnist_local.SOURCE_FILES:
    with open(os.path.join(source_dir, name), 'rb') as f:
      sha256[name] = hashlib.sha256(f.read()).hexdigest()
  return sha256


def test_missing_dataset_is_downloaded_then_read(tmp_path, monkeypatch):
  source = tmp_path / 'source'
  _write_idx_source(source, num_train=40)
  prepared = tmp_path / 'prepared_elsewhere'
  mnist_local.prepare(str(source), str(prepared), None, name='kmnist')
  calls = []
  def fake_download(builder, *args, **kwargs):
    # Stands in for tfds' download: the dataset appears in the data dir.
    calls.append(builder.name)
    shutil.copytree(prepared / 'kmnist', os.path.join(builder.data_dir_root, 'kmnist'))
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', fake_download)
  config = _config('kmnist', resize='pad')
  config.dataset.data_dir = str(tmp_path / 'tfds')
  input_pipeline.check_available(config)
  assert calls == ['kmnist']
  assert input_pipeline.num_examples(config, 'train') == 40
  batch = next(input_pipeline.train_iterator(config))
  assert batch['image'].shape == (BATCH, 32, 32, 1)
  assert calls == ['kmnist']  # Prepared once; later loads only read.


# -----------------------------------------------------------------------------
# Offline preparation of the MNIST family from IDX files.
# -----------------------------------------------------------------------------


@pytest.mark.parametrize('name', ['fashion_mnist', 'kmnist'])
def test_prepare_idx_family_is_tfds_own_dataset(tmp_path, name):
  source = tmp_path / 'source'
  gz_sha256 = _write_idx_source(source)
  data_dir = str(tmp_path / 'tfds')
  # The sha256 of the .gz files is accepted (tfds records those).
  dataset_dir = mnist_local.prepare(str(source), data_dir, gz_sha256, name=name)
  reference = tfds.builder(name, data_dir=str(tmp_path / 'empty')).info
  assert dataset_dir == os.path.join(data_dir, name, str(reference.version))
  splits, info = tfds.load(name, data_dir=data_dir, download=False,
                           split=['train', 'test'], with_info=True)
  assert info.features.to_json() == reference.features.to_json()  # e.g. label names.
  expected = {}
  for split, prefix in (('train', 'train'), ('test', 't10k')):
    images = _read_idx(source / f'{prefix}-images-idx3-ubyte.gz')
    labels = _read_idx(source / f'{prefix}-labels-idx1-ubyte.gz')
    expected[split] = sorted((i[..., None].tobytes(), int(l)) for i, l in zip(images, labels))
  for ds, split in zip(splits, ('train', 'test')):
    assert sorted((ex['image'].tobytes(), int(ex['label']))
                  for ex in tfds.as_numpy(ds)) == expected[split]
  # And lgae reads it by name, labels and all.
  config = _config(name, resize='pad')
  config.dataset.data_dir = data_dir
  config.dataset.download = False
  (batch,) = list(input_pipeline.eval_iterator(config))
  real = batch['mask'] > 0
  assert sorted(batch['label'][real]) == sorted(l for _, l in expected['test'])


def _read_idx(path):
  with gzip.open(path, 'rb') as f:
    return mnist_local._parse_idx(f.read(), str(path))  # pylint: disable=protected-access


@pytest.mark.parametrize('name', ['fashion_mnist', 'kmnist'])
def test_fake_files_fail_tfds_recorded_checksums(tmp_path, name):
  source = tmp_path / 'source'
  _write_idx_source(source)
  recorded = mnist_local.recorded_sha256(name)
  assert set(recorded) == set(mnist_local.SOURCE_FILES)
  with pytest.raises(mnist_local.ChecksumMismatchError,
                     match=f'{mnist_local.TRAIN_IMAGES}: sha256 is .* expected '
                           f'{recorded[mnist_local.TRAIN_IMAGES]}'):
    prepare_data.prepare(name, str(source), str(tmp_path / 'tfds'))
  assert not (tmp_path / 'tfds' / name).exists()


def test_without_recorded_checksums_sizes_are_checked(tmp_path, monkeypatch):
  source = tmp_path / 'source'
  _write_idx_source(source)
  monkeypatch.setattr(mnist_local, 'recorded_sha256', lambda name: None)
  with pytest.raises(mnist_local.ChecksumMismatchError,
                     match=r"20 examples, but kmnist 'train' has 60000"):
    mnist_local.prepare(str(source), str(tmp_path / 'tfds'), name='kmnist')


def test_truncated_idx_file_is_refused(tmp_path):
  source = tmp_path / 'source'
  _write_idx_source(source)
  path = source / mnist_local.TEST_IMAGES
  with gzip.open(path, 'rb') as f:
    data = f.read()
  with gzip.open(path, 'wb') as f:
    f.write(data[:-28])  # One image short of what the header says.
  with pytest.raises(mnist_local.ChecksumMismatchError, match='header says shape'):
    mnist_local.prepare(str(source), str(tmp_path / 'tfds'), None, name='fashion_mnist')


def test_cli_names_the_files_it_needs(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.prepare_data', '--dataset=kmnist',
       f'--source_dir={tmp_path}', f'--data_dir={tmp_path / "tfds"}'],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  errors = [line for line in result.stderr.splitlines()
            if line.startswith('error:')]
  assert len(errors) == 1 and 'kmnist' in errors[0]
  for name in mnist_local.SOURCE_FILES:
    assert name in errors[0]


def test_no_message_names_a_development_path():
  # Product messages and docs must not point at this machine's directories.
  for config in (mnist.get_config(), _config('cifar10', channels=3)):
    route = input_pipeline.offline_route(config.dataset.name, 'D')
    assert 'shared' not in route and '/work' not in route
  for text in (prepare_data.__doc__, mnist_local.__doc__):
    assert '../shared' not in text


def test_cli_without_source_dir_is_one_line_saying_what_to_give(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.prepare_data', '--dataset=mnist',
       f'--data_dir={tmp_path / "tfds"}'],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  errors = [line for line in result.stderr.splitlines()
            if line.startswith('error:')]
  assert len(errors) == 1 and '--source_dir' in errors[0]
  assert not (tmp_path / 'tfds').exists()
