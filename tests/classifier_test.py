"""The generation-metric classifier: it learns, it caches atomically, the cache is reused."""

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import celeba, mnist
from lgae.evaluation import classifier

NUM_MOCK = 64


def _synthetic_batches(rng, num_classes, batch_size):
  """Endless batches where class k is a bright 8x8 block at a position of its own."""
  while True:
    labels = rng.integers(0, num_classes, batch_size)
    images = rng.normal(-0.8, 0.2, (batch_size, 32, 32, 1)).astype(np.float32)
    for i, k in enumerate(labels):
      top, left = 8 * (k // 4), 8 * (k % 4)
      images[i, top:top + 8, left:left + 8] = 1.0
    yield {'image': images, 'label': labels.astype(np.int32)}


def test_train_learns_separable_classes():
  recipe = classifier.Recipe(conv_features=(8, 16), dense_features=32)
  model = classifier.build_model(recipe)
  rng = np.random.default_rng(0)
  params = classifier.train(model, _synthetic_batches(rng, 10, 32), 40,
                            learning_rate=3e-3, seed=0, image_shape=(32, 32, 1))
  test = next(_synthetic_batches(rng, 10, 200))
  test['mask'] = np.ones(200, np.float32)
  assert classifier.accuracy(model, params, iter([test])) > 50.0  # Chance is 10%.


@pytest.fixture
def mock_mnist():
  with tfds.testing.mock_data(num_examples=NUM_MOCK):
    yield


def test_cache_is_written_then_loaded_without_training(mock_mnist, tmp_path, monkeypatch):
  config = mnist.get_config('smoke')
  cache = tmp_path / 'cache' / 'mnist_clf'
  first = classifier.get_or_train_classifier(config, str(cache), num_steps=2)
  assert not first.from_cache
  assert sorted(os.listdir(cache)) == ['classifier.json', 'params']
  assert os.listdir(tmp_path / 'cache') == ['mnist_clf']  # No temporary dirs left.
  with open(cache / 'classifier.json') as f:
    metadata = json.load(f)
  assert 0.0 <= metadata['test_accuracy'] <= 100.0 and metadata['num_steps'] == 2

  def no_training(*args, **kwargs):
    raise AssertionError('retrained although the cache was valid')
  monkeypatch.setattr(classifier, 'train', no_training)
  second = classifier.get_or_train_classifier(config, str(cache), num_steps=2)
  assert second.from_cache and second.test_accuracy == first.test_accuracy
  images = np.random.default_rng(0).uniform(-1, 1, (6, 32, 32, 1)).astype(np.float32)
  np.testing.assert_allclose(second.features(images), first.features(images), rtol=1e-6)
  assert second.features(images).shape == (6, 128)
  assert second.logits(images).shape == (6, 10)


def test_default_cache_dir_is_under_the_data_dir_and_keyed(tmp_path):
  config = mnist.get_config('smoke')
  config.dataset.data_dir = str(tmp_path)
  recipe = classifier.recipe_for(config)
  cache_dir = lambda **kw: classifier.default_cache_dir(config, recipe, **kw)
  default = cache_dir(num_train_examples=60_000)
  assert os.path.dirname(default) == str(tmp_path / 'lgae_classifiers')
  assert os.path.basename(default).startswith('mnist_')
  # Fewer steps or a test-sized dataset never share the real cache.
  assert cache_dir(num_train_examples=60_000, num_steps=5) != default
  assert cache_dir(num_train_examples=64) != default
  # The lgae model's own settings do not change the classifier.
  config.seed, config.batch_size = 7, 32
  assert cache_dir(num_train_examples=60_000) == default


def test_datasets_without_labels_have_no_classifier(tmp_path):
  assert classifier.get_or_train_classifier(celeba.get_config('smoke'), str(tmp_path)) is None
  assert not os.listdir(tmp_path)


def test_interrupted_write_leaves_no_cache(tmp_path, monkeypatch):
  params = {'w': np.ones((2, 3), np.float32)}
  cache = tmp_path / 'mnist_clf'

  def killed(*args, **kwargs):
    raise KeyboardInterrupt
  monkeypatch.setattr(classifier.json, 'dump', killed)
  with pytest.raises(KeyboardInterrupt):
    classifier._write_atomically(str(cache), params, {'test_accuracy': 1.0})
  assert not os.listdir(tmp_path)
