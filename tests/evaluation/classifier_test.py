"""The generation-metric classifier: it learns, it caches atomically, the cache is reused,
and every dataset with class labels has a recipe (MNIST's unchanged)."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import celeba, chairs, mnist
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


# -----------------------------------------------------------------------------
# A recipe per labelled dataset.
# -----------------------------------------------------------------------------


def _config(name, image_size=32, channels=1, resize='resize'):
  """The MNIST smoke config pointed at another tfds dataset, as on the CLI."""
  config = mnist.get_config('smoke')
  config.dataset.name = name
  config.dataset.image_size = image_size
  config.dataset.channels = channels
  config.dataset.resize = resize
  return config


def test_the_mnist_recipe_and_its_cache_dir_are_unchanged(tmp_path):
  # Every field is part of the cache key: the classifier cached in existing data
  # dirs (and tests/evaluation/real_mnist_classifier_test.py's thresholds) depend on them.
  recipe = classifier.RECIPES['mnist']
  assert recipe == classifier.Recipe(
      conv_features=(32, 64), dense_features=128, num_classes=10, batch_size=128,
      learning_rate=1e-3, num_epochs=2, seed=0, shuffle_buffer=60_000, train_split='train',
      test_split='test')
  for config in (mnist.get_config(), mnist.get_config('smoke')):
    config.dataset.data_dir = str(tmp_path)
    assert classifier.recipe_for(config) is recipe
    assert os.path.basename(classifier.default_cache_dir(
        config, recipe, num_train_examples=60_000)) == 'mnist_9e38322f62'


# name, config overrides, expected recipe fields (None: no class labels, no classifier).
LABELLED = [
    ('fashion_mnist', dict(resize='pad'), dict(conv_features=(32, 64), num_classes=10,
                                              num_epochs=2)),
    ('kmnist', dict(resize='pad'), dict(conv_features=(32, 64), num_classes=10, num_epochs=2)),
    ('cifar10', dict(channels=3), dict(conv_features=(64, 128), num_classes=10, num_epochs=10)),
    ('cifar100', dict(channels=3), dict(conv_features=(64, 128), num_classes=100,
                                        num_epochs=10)),
    ('cifar10', dict(channels=1), dict(conv_features=(32, 64), num_classes=10, num_epochs=2)),
    ('svhn_cropped', dict(channels=3, image_size=16), dict(conv_features=(64,), num_classes=10,
                                                           num_epochs=10)),
    ('celeb_a', dict(channels=3), None),
]


@pytest.mark.parametrize('name, overrides, expected', LABELLED,
                         ids=[f'{n}-{o.get("image_size", 32)}x{o.get("channels", 1)}'
                              for n, o, _ in LABELLED])
def test_every_dataset_with_class_labels_has_a_recipe(name, overrides, expected):
  config = _config(name, **overrides)
  config.dataset.data_dir = '/nonexistent/tfds'  # Features need no data.
  recipe = classifier.recipe_for(config)
  if expected is None:
    assert recipe is None
    return
  assert dataclasses.asdict(recipe) == dataclasses.asdict(classifier.Recipe(**expected))
  assert recipe == classifier.default_recipe(
      config.dataset.image_size, config.dataset.channels, expected['num_classes'])


def test_rendered_chairs_has_no_class_labels_and_no_recipe():
  config = chairs.get_config('smoke')   # A `chair_id` string, no ClassLabel.
  config.dataset.data_dir = '/nonexistent/tfds'
  assert classifier.recipe_for(config) is None


def test_default_recipe_follows_the_image_layout():
  # 32x32 grey in 10 classes: exactly MNIST's recipe, so MNIST-like datasets get its network.
  assert classifier.default_recipe(32, 1, 10) == classifier.RECIPES['mnist']
  layers = lambda *args: classifier.default_recipe(*args).conv_features
  assert layers(28, 1, 10) == (32, 64)          # 28 -> 14 -> 7.
  assert layers(64, 1, 10) == (32, 64, 128)     # One more halving, one more conv.
  assert layers(8, 1, 10) == (32,)              # At least one conv.
  assert layers(128, 3, 10) == (64, 128, 256, 256)   # Capped width.
  split = classifier.default_recipe(32, 3, 5, train_split='train[:80%]', test_split='test')
  assert (split.train_split, split.num_classes) == ('train[:80%]', 5)
  for bad in ((32, 2, 10), (32, 1, 1), (0, 1, 10)):
    with pytest.raises(ValueError, match='No default classifier recipe'):
      classifier.default_recipe(*bad)


def test_a_colour_dataset_trains_caches_and_reloads_its_own_classifier(tmp_path, monkeypatch):
  config = _config('cifar10', channels=3)
  config.dataset.data_dir = str(tmp_path)
  images = np.random.default_rng(0).uniform(-1, 1, (5, 32, 32, 3)).astype(np.float32)
  with tfds.testing.mock_data(num_examples=NUM_MOCK, policy=tfds.testing.MockPolicy.USE_CODE):
    first = classifier.get_or_train_classifier(config, num_steps=2)
    assert not first.from_cache
    # Cached per dataset, under the data dir, as MNIST's.
    assert os.path.dirname(first.directory) == str(tmp_path / 'lgae_classifiers')
    assert os.path.basename(first.directory).startswith('cifar10_')
    assert first.features(images).shape == (5, 128) and first.logits(images).shape == (5, 10)
    monkeypatch.setattr(classifier, 'train', lambda *a, **kw: pytest.fail('retrained'))
    second = classifier.get_or_train_classifier(config, num_steps=2)
  assert second.from_cache and second.directory == first.directory
  np.testing.assert_allclose(second.features(images), first.features(images), rtol=1e-6)
