"""Input pipeline: shapes, ranges, determinism, exact resume, eval padding.

Most tests use `tfds.testing.mock_data` (random examples, no files, no
network). A few read a tiny MNIST that `lgae.data.mnist_local` prepares
from fake IDX files, to exercise the real tfds read path and exact values.
"""

import gzip
import os
import struct

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import celeba, chairs, mnist
from lgae.data import input_pipeline
from lgae.data import mnist_local

# Mocked splits have this many examples; with the smoke batch size of 16 that
# is 2 full batches per epoch (8 dropped), so a few steps cross epochs.
NUM_MOCK = 40


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def _assert_batches_equal(expected, actual):
  assert len(expected) == len(actual)
  for a, b in zip(expected, actual):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _mnist_config(seed=0):
  config = mnist.get_config('smoke')
  config.seed = seed
  return config


@pytest.fixture
def mock_mnist():
  with tfds.testing.mock_data(num_examples=NUM_MOCK):
    yield


# -----------------------------------------------------------------------------
# preprocess: exact values on hand-made examples.
# -----------------------------------------------------------------------------


def test_preprocess_mnist_pads_with_background():
  example = {'image': tf.fill([28, 28, 1], tf.constant(255, tf.uint8)),
             'label': tf.constant(7, tf.int64)}
  out = input_pipeline.preprocess(example, _mnist_config())
  image = out['image'].numpy()
  assert image.shape == (32, 32, 1) and image.dtype == np.float32
  assert out['label'].dtype == tf.int32 and int(out['label']) == 7
  # 2 pixels of background (-1) on every side, the digit (255 -> 1) inside.
  np.testing.assert_array_equal(image[2:30, 2:30], 1.0)
  border = np.ones([32, 32], bool)
  border[2:30, 2:30] = False
  np.testing.assert_array_equal(image[border, 0], -1.0)


def test_preprocess_celeb_a_keeps_the_central_140_square():
  # 255 inside the central 140x140 of a 218x178 image, 0 outside: a correct
  # crop sees only 255, so the resized image is exactly 1 everywhere.
  image = np.zeros([218, 178, 3], np.uint8)
  image[39:179, 19:159] = 255
  out = input_pipeline.preprocess(
      {'image': tf.constant(image)}, celeba.get_config('smoke'))
  assert out['image'].shape == (32, 32, 3)
  np.testing.assert_array_equal(out['image'].numpy(), 1.0)
  assert int(out['label']) == 0


def test_preprocess_scales_to_minus_one_one():
  image = np.arange(256, dtype=np.uint8)[:, None, None]  # 256 x 1 x 1.
  out = input_pipeline._to_model_input({'image': image, 'label': 0})
  values = out['image'].numpy().ravel()
  assert values[0] == -1.0 and values[-1] == 1.0
  assert np.all(np.diff(values) > 0)


# -----------------------------------------------------------------------------
# Training batches (mocked data).
# -----------------------------------------------------------------------------


def test_mnist_train_batches(mock_mnist):
  config = _mnist_config()
  batch = next(input_pipeline.train_iterator(config))
  assert batch['image'].shape == (16, 32, 32, 1)
  assert batch['image'].dtype == np.float32
  assert batch['label'].shape == (16,) and batch['label'].dtype == np.int32
  assert batch['image'].min() >= -1.0 and batch['image'].max() <= 1.0
  assert set(batch['label']) <= set(range(10))
  # The 2-pixel padding is the background value.
  np.testing.assert_array_equal(batch['image'][:, :2], -1.0)
  np.testing.assert_array_equal(batch['image'][:, -2:], -1.0)
  np.testing.assert_array_equal(batch['image'][:, :, :2], -1.0)
  np.testing.assert_array_equal(batch['image'][:, :, -2:], -1.0)


@pytest.mark.parametrize('get_config, shape', [
    (celeba.get_config, (16, 32, 32, 3)),
    (chairs.get_config, (16, 64, 64, 1)),
])
def test_other_datasets_train_batches(get_config, shape):
  config = get_config('smoke')
  with tfds.testing.mock_data(
      num_examples=NUM_MOCK, policy=tfds.testing.MockPolicy.USE_CODE):
    batch = next(input_pipeline.train_iterator(config))
  assert batch['image'].shape == shape and batch['image'].dtype == np.float32
  assert -1.0 <= batch['image'].min() and batch['image'].max() <= 1.0
  assert batch['image'].std() > 0.01  # Random mock pixels, not a constant.
  np.testing.assert_array_equal(batch['label'], np.zeros([16], np.int32))


def test_steps_per_epoch_and_num_examples(mock_mnist):
  config = _mnist_config()
  assert input_pipeline.num_examples(config, 'train') == NUM_MOCK
  assert input_pipeline.steps_per_epoch(config) == NUM_MOCK // 16


def test_same_seed_same_batches_different_seed_different(mock_mnist):
  first = _take(input_pipeline.train_iterator(_mnist_config(seed=0)), 3)
  again = _take(input_pipeline.train_iterator(_mnist_config(seed=0)), 3)
  other = _take(input_pipeline.train_iterator(_mnist_config(seed=1)), 3)
  _assert_batches_equal(first, again)
  assert not np.array_equal(first[0]['image'], other[0]['image'])


def test_each_epoch_is_a_new_permutation(mock_mnist):
  config = _mnist_config()
  batches = _take(input_pipeline.train_iterator(config), 4)  # 2 epochs.
  epochs = [np.concatenate([b['image'] for b in batches[i:i + 2]])
            for i in (0, 2)]
  for images in epochs:  # No example twice within an epoch.
    assert len({image.tobytes() for image in images}) == 32
  assert not np.array_equal(epochs[0], epochs[1])


@pytest.mark.parametrize('start_step', [1, 2, 3, 5])
def test_resume_yields_exactly_the_remaining_batches(mock_mnist, start_step):
  # Epochs are 2 batches long: 1 resumes mid-epoch 0, 2 at the boundary,
  # 3 mid-epoch 1, 5 mid-epoch 2; each then runs across a boundary.
  config = _mnist_config(seed=3)
  fresh = _take(input_pipeline.train_iterator(config), 7)
  resumed = _take(
      input_pipeline.train_iterator(config, start_step=start_step),
      7 - start_step)
  _assert_batches_equal(fresh[start_step:], resumed)


# -----------------------------------------------------------------------------
# Evaluation batches.
# -----------------------------------------------------------------------------


def test_eval_batches_are_padded_and_masked(mock_mnist):
  config = _mnist_config()  # eval_batch_size 32: 40 = 32 + 8 (+ 24 padding).
  batches = list(input_pipeline.eval_iterator(config))
  assert len(batches) == 2
  for batch in batches:
    assert batch['image'].shape == (32, 32, 32, 1)
    assert batch['image'].dtype == np.float32
    assert batch['label'].shape == (32,) and batch['label'].dtype == np.int32
    assert batch['mask'].shape == (32,) and batch['mask'].dtype == np.float32
  last = batches[-1]
  np.testing.assert_array_equal(last['mask'], [1.0] * 8 + [0.0] * 24)
  np.testing.assert_array_equal(last['image'][8:], 0.0)
  total = sum(batch['mask'].sum() for batch in batches)
  assert total == input_pipeline.num_examples(config, 'test') == NUM_MOCK
  # No shuffling: a second pass is identical.
  _assert_batches_equal(batches, list(input_pipeline.eval_iterator(config)))


# -----------------------------------------------------------------------------
# Missing data and configuration.
# -----------------------------------------------------------------------------


@pytest.mark.parametrize('get_config, expected', [
    (mnist.get_config,
     'python -m experiments.prepare_data --dataset=mnist '
     '--source_dir=DIR --data_dir='),
    (chairs.get_config, 'rendered_chairs.tar'),
    (celeba.get_config, 'machine with internet'),
])
def test_missing_data_raises_early_with_instructions(
    tmp_path, get_config, expected):
  config = get_config('smoke')
  config.dataset.data_dir = str(tmp_path)
  config.dataset.download = False
  for load in (input_pipeline.check_available,
               input_pipeline.steps_per_epoch,
               input_pipeline.train_iterator,  # Raises when called.
               input_pipeline.eval_iterator):
    with pytest.raises(input_pipeline.DataNotFoundError) as error:
      load(config)
    assert expected in str(error.value)
    assert str(tmp_path) in str(error.value)
  if config.dataset.name != 'celeb_a':
    assert 'experiments.prepare_data' in str(error.value)
  assert os.listdir(tmp_path) == []  # Nothing downloaded or created.


def test_resolve_data_dir(monkeypatch):
  config = _mnist_config()
  monkeypatch.delenv('TFDS_DATA_DIR', raising=False)
  assert input_pipeline.resolve_data_dir(config) is None
  monkeypatch.setenv('TFDS_DATA_DIR', '/from/env')
  assert input_pipeline.resolve_data_dir(config) == '/from/env'
  config.dataset.data_dir = '/from/config'
  assert input_pipeline.resolve_data_dir(config) == '/from/config'


def test_configure_tensorflow_is_idempotent():
  input_pipeline.configure_tensorflow()
  input_pipeline.configure_tensorflow()
  assert not tf.config.get_visible_devices('GPU')
  assert not tf.config.get_visible_devices('TPU')


# -----------------------------------------------------------------------------
# The real tfds read path, on a tiny MNIST prepared from fake IDX files.
# -----------------------------------------------------------------------------

NUM_TRAIN, NUM_TEST = 40, 10


def _write_idx_gz(path, array):
  header = struct.pack('>HBB', 0, 0x08, array.ndim)
  header += struct.pack(f'>{array.ndim}I', *array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope='module')
def tiny_mnist_dir(tmp_path_factory):
  """A data dir with `mnist` whose image i is filled with 5*i, label i % 10."""
  source = tmp_path_factory.mktemp('mnist_source')
  for prefix, n, offset in (('train', NUM_TRAIN, 0), ('t10k', NUM_TEST, 200)):
    values = (np.arange(n) * 5 + offset).astype(np.uint8)
    images = np.broadcast_to(values[:, None, None], (n, 28, 28))
    _write_idx_gz(source / f'{prefix}-images-idx3-ubyte.gz', images)
    _write_idx_gz(source / f'{prefix}-labels-idx1-ubyte.gz', np.arange(n) % 10)
  data_dir = tmp_path_factory.mktemp('tfds')
  mnist_local.prepare(str(source), str(data_dir), expected_sha256=None)
  return str(data_dir)


def _example_ids(batch):
  """Recovers i from the digit area's value 5*i, scaled to [-1, 1]."""
  values = (batch['image'][:, 16, 16, 0] + 1.0) * 127.5
  return np.round(values / 5).astype(int)


def test_real_tfds_path_via_tfds_data_dir(tiny_mnist_dir, monkeypatch):
  monkeypatch.setenv('TFDS_DATA_DIR', tiny_mnist_dir)
  config = _mnist_config()
  input_pipeline.check_available(config)
  assert input_pipeline.num_examples(config, 'train') == NUM_TRAIN
  assert input_pipeline.num_examples(config, 'train[:50%]') == NUM_TRAIN // 2
  assert input_pipeline.steps_per_epoch(config) == NUM_TRAIN // 16

  batches = _take(input_pipeline.train_iterator(config), 4)  # 2 epochs.
  for batch in batches:  # Images and labels stay paired: label = i % 10.
    np.testing.assert_array_equal(batch['label'], _example_ids(batch) % 10)
  for start in (0, 2):
    ids = np.concatenate([_example_ids(b) for b in batches[start:start + 2]])
    assert len(set(ids)) == 32 and set(ids) <= set(range(NUM_TRAIN))
  resumed = _take(input_pipeline.train_iterator(config, start_step=3), 1)
  _assert_batches_equal(batches[3:], resumed)

  (batch,) = list(input_pipeline.eval_iterator(config))  # 10 real + 22 pad.
  assert batch['mask'].sum() == NUM_TEST
  real = batch['mask'] > 0
  ids = np.round(((batch['image'][real, 16, 16, 0] + 1) * 127.5 - 200) / 5)
  assert sorted(ids.astype(int)) == list(range(NUM_TEST))
