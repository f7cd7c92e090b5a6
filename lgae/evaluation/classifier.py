"""A small classifier per labelled dataset that lgae trains itself, for generation metrics.

The Frechet distance and the label accuracy of generated images need a fixed
feature extractor. Following TF-GAN's MNIST convention (its
`mnist_frechet_distance` uses a small CNN trained on MNIST, not Inception), we
train a small CNN (convs + 2 dense layers) once on the dataset's train split
and cache it next to the data, in
`<tfds data dir>/lgae_classifiers/<dataset>_<hash>/`, where the hash covers
everything the weights depend on (architecture, training recipe, input
layout). Every run and every evaluation then scores against the very same
network.

Every dataset with class labels (a tfds ClassLabel `label` feature) has a
recipe (`recipe_for`): its own entry in `RECIPES` (MNIST's, fixed since its
classifier was first cached), else `default_recipe`, derived from the image
size, the channels and the number of classes. For 32x32 grey images in 10
classes (Fashion-MNIST, KMNIST) that is MNIST's network and training. Scores
are comparable between runs on one dataset (one classifier), not between
datasets nor with published Inception-based FIDs.

Inputs are exactly lgae's model inputs (NHWC in [-1, 1], MNIST padded to
32x32x1), read with `lgae.data.input_pipeline`, so the classifier sees real and
generated images through the same preprocessing.

The cache is written atomically: into a temporary directory that is renamed
into place only when complete, so a killed process never leaves a half
cache, and two processes racing to train it both end up using one copy.
"""

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from lgae.data import input_pipeline

Batch = dict[str, np.ndarray]

_PARAMS_DIR = 'params'
_METADATA_FILE = 'classifier.json'
_CACHE_SUBDIR = 'lgae_classifiers'
# Fixed so that test accuracy is comparable between recipes and cache dirs.
_EVAL_BATCH_SIZE = 500
# Part of the cache key: bump it whenever `train` changes how weights come
# out (e.g. 2: cosine learning-rate decay), so stale caches are not reused.
_TRAINING_VERSION = 2


@dataclasses.dataclass(frozen=True)
class Recipe:
  """Architecture and training of a dataset's classifier.

  Attributes:
    conv_features: output channels of the 3x3 convs (each followed by relu
      and 2x2 max pooling).
    dense_features: width of the penultimate dense layer: the feature
      dimension of `Classifier.features` (and of the Frechet distance).
    num_classes: number of labels.
    batch_size: training batch size (capped at the train split's size).
    learning_rate: Adam's initial learning rate, cosine-decayed to 0 over
      training.
    num_epochs: passes over the train split when no step count is given.
    seed: seeds the initialisation and the data order, so the cache key
      determines the weights.
    shuffle_buffer: tf.data shuffle buffer for the train split.
    train_split: tfds split to train on.
    test_split: tfds split the reported test accuracy is measured on.
  """

  conv_features: tuple[int, ...] = (32, 64)
  dense_features: int = 128
  num_classes: int = 10
  batch_size: int = 128
  learning_rate: float = 1e-3
  num_epochs: int = 2
  seed: int = 0
  shuffle_buffer: int = 60_000
  train_split: str = 'train'
  test_split: str = 'test'


# Recipes of their own; every other dataset with class labels gets
# `default_recipe`. MNIST's must never change: its cache key (every field) names
# the classifier cached in existing data dirs, and the thresholds of
# tests/evaluation/real_mnist_classifier_test.py were measured on it.
RECIPES: dict[str, Recipe] = {'mnist': Recipe()}

# `default_recipe`: convolutions halve the image until it is at most this wide.
_DEFAULT_MIN_SIDE = 8
# Output channels of the first conv (doubling per conv, capped) for grey and
# for colour images: natural colour images need more filters than strokes.
_DEFAULT_CONV_WIDTH = {1: 32, 3: 64}
_DEFAULT_MAX_CONV_WIDTH = 256
# Passes over the train split for grey and for colour images.
_DEFAULT_EPOCHS = {1: 2, 3: 10}


def default_recipe(image_size: int, channels: int, num_classes: int, *,
                   train_split: str = 'train', test_split: str = 'test') -> Recipe:
  """The recipe of a labelled dataset without one of its own in `RECIPES`.

  One 3x3 conv (+ 2x2 max pooling) per halving of the image down to at most
  8 pixels a side (32 -> 2 convs, 64 -> 3), starting at 32 channels for grey
  and 64 for colour images and doubling per conv (at most 256); 128 features;
  2 epochs for grey, 10 for colour images; MNIST's batch size, learning rate,
  seed and shuffle buffer. For 32x32 grey images in 10 classes this is exactly
  MNIST's recipe (`Recipe()`), so Fashion-MNIST and KMNIST get MNIST's network.

  Args:
    image_size: the model inputs' side (`config.dataset.image_size`).
    channels: 1 (grey) or 3 (colour).
    num_classes: the number of labels.
    train_split: the tfds split the classifier trains on.
    test_split: the tfds split its test accuracy is measured on.
  """
  if image_size < 1 or channels not in _DEFAULT_CONV_WIDTH or num_classes < 2:
    raise ValueError(f'No default classifier recipe for {image_size}x{image_size}x{channels} '
                     f'images in {num_classes} classes.')
  num_convs, side = 0, image_size
  while num_convs == 0 or side > _DEFAULT_MIN_SIDE:
    side, num_convs = side // 2, num_convs + 1
  width = _DEFAULT_CONV_WIDTH[channels]
  conv_features = tuple(min(width * 2**i, _DEFAULT_MAX_CONV_WIDTH) for i in range(num_convs))
  return Recipe(conv_features=conv_features, num_classes=num_classes,
                num_epochs=_DEFAULT_EPOCHS[channels], train_split=train_split,
                test_split=test_split)


class CNN(nn.Module):
  """[conv3x3 -> relu -> maxpool2]* -> dense -> relu (features) -> dense (logits)."""

  conv_features: tuple[int, ...]
  dense_features: int
  num_classes: int

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns (logits [N, num_classes], features [N, dense_features])."""
    for i, f in enumerate(self.conv_features):
      x = nn.relu(nn.Conv(f, (3, 3), padding='SAME', name=f'conv{i}')(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    features = nn.relu(nn.Dense(self.dense_features, name='fc0')(x))
    return nn.Dense(self.num_classes, name='fc_out')(features), features


def build_model(recipe: Recipe) -> CNN:
  return CNN(conv_features=tuple(recipe.conv_features),
             dense_features=recipe.dense_features, num_classes=recipe.num_classes)


@functools.partial(jax.jit, static_argnums=0)
def _apply(model: CNN, params: Any, images: jax.Array) -> tuple[jax.Array, jax.Array]:
  return model.apply({'params': params}, images)


@dataclasses.dataclass(frozen=True, eq=False)
class Classifier:
  """A trained classifier; its methods are jitted and take lgae-style images.

  Attributes:
    model: the network.
    params: its parameters (uncommitted arrays, so that jit places them next
      to whatever images it is given, sharded or not).
    test_accuracy: percent correct on the recipe's test split.
    directory: the cache directory it was saved to / loaded from.
    from_cache: True if loaded from an existing cache, False if just trained.
  """

  model: CNN
  params: Any
  test_accuracy: float
  directory: str
  from_cache: bool

  def features_and_logits(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """([N, F] penultimate features, [N, num_classes] logits) of [N, H, W, C] images."""
    logits, features = _apply(self.model, self.params, images)
    return features, logits

  def features(self, images: jax.Array) -> jax.Array:
    """[N, F] penultimate-layer activations (the Frechet distance's features)."""
    return self.features_and_logits(images)[0]

  def logits(self, images: jax.Array) -> jax.Array:
    """[N, num_classes] class logits."""
    return self.features_and_logits(images)[1]


def recipe_for(config: ml_collections.ConfigDict) -> Recipe | None:
  """The classifier recipe of `config`'s dataset; None if it has no class labels.

  `RECIPES[name]` where there is one, else `default_recipe` of the config's
  image layout, the dataset's number of classes (from its tfds features; no
  data is read) and the config's train and eval splits.
  """
  recipe = RECIPES.get(config.dataset.name)
  if recipe is not None or not input_pipeline.has_class_labels(config):
    return recipe
  num_classes = input_pipeline.dataset_features(config)['label'].num_classes
  return default_recipe(int(config.dataset.image_size), int(config.dataset.channels),
                        int(num_classes), train_split=config.dataset.train_split,
                        test_split=config.dataset.eval_split)


def _data_config(config: ml_collections.ConfigDict, recipe: Recipe) -> ml_collections.ConfigDict:
  """`config` with the fields of the data pipeline the recipe fixes.

  The lgae config's seed, batch size and shuffle buffer must not leak into the
  classifier: its weights have to be a function of the cache key only.
  """
  cfg = ml_collections.ConfigDict(config.to_dict())
  cfg.seed = recipe.seed
  cfg.batch_size = recipe.batch_size
  cfg.eval_batch_size = _EVAL_BATCH_SIZE
  cfg.dataset.train_split = recipe.train_split
  cfg.dataset.eval_split = recipe.test_split
  cfg.dataset.shuffle_buffer = recipe.shuffle_buffer
  return cfg


def cache_key(config: ml_collections.ConfigDict, recipe: Recipe, *, num_train_examples: int,
              num_steps: int | None = None) -> dict[str, Any]:
  """Everything the cached weights depend on (hashed into the cache dir name).

  The train split's size is part of it so that a classifier trained on a
  test dataset (tfds mock data, a tiny fake MNIST) can never be mistaken for
  the real one, even in the same data dir.
  """
  return {
      'dataset': config.dataset.name,
      'image_size': int(config.dataset.image_size),
      'channels': int(config.dataset.channels),
      'num_train_examples': int(num_train_examples),
      'recipe': dataclasses.asdict(recipe),
      'num_steps': num_steps,
      'training_version': _TRAINING_VERSION,
  }


def default_cache_dir(config: ml_collections.ConfigDict, recipe: Recipe, *,
                      num_train_examples: int, num_steps: int | None = None) -> str:
  """`<tfds data dir>/lgae_classifiers/<dataset>_<hash of cache_key>`."""
  data_dir = input_pipeline.resolve_data_dir(config)
  if data_dir is None:
    # tfds' own default, where the dataset itself is read from.
    data_dir = os.fspath(epath.Path(os.path.expanduser('~')) / 'tensorflow_datasets')
  key = json.dumps(cache_key(config, recipe, num_train_examples=num_train_examples,
                             num_steps=num_steps), sort_keys=True)
  digest = hashlib.sha1(key.encode()).hexdigest()[:10]
  return os.path.join(data_dir, _CACHE_SUBDIR, f'{config.dataset.name}_{digest}')


# -----------------------------------------------------------------------------
# Training and accuracy.
# -----------------------------------------------------------------------------


def train(model: CNN, batches: Iterator[Batch], num_steps: int, *, learning_rate: float,
          seed: int, image_shape: tuple[int, int, int]) -> Any:
  """Trains `model` with Adam on softmax cross-entropy; returns its params.

  Args:
    model: the network.
    batches: yields {'image': [B, H, W, C] float32, 'label': [B] int} numpy
      batches of a fixed size B (one compile).
    num_steps: number of updates.
    learning_rate: Adam's initial learning rate, cosine-decayed to 0.
    seed: initialisation seed.
    image_shape: (H, W, C), to initialise the parameters.

  Returns:
    The trained parameters.
  """
  params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, *image_shape)))['params']
  tx = optax.adam(optax.cosine_decay_schedule(learning_rate, max(num_steps, 1)))
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, images, labels):
    def loss_fn(p):
      logits, _ = model.apply({'params': p}, images)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  log_every = max(1, num_steps // 10)
  for i in range(num_steps):
    batch = next(batches)
    params, opt_state, loss = step(params, opt_state, batch['image'], batch['label'])
    if (i + 1) % log_every == 0 or i + 1 == num_steps:
      logging.info('classifier step %d/%d: loss %.4f', i + 1, num_steps, float(loss))
  return params


def accuracy(model: CNN, params: Any, batches: Iterator[Batch]) -> float:
  """Percent correct over padded eval batches ({'image', 'label', 'mask'})."""
  correct = total = 0.0
  for batch in batches:
    logits, _ = _apply(model, params, batch['image'])
    hit = np.asarray(jnp.argmax(logits, axis=-1)) == batch['label']
    correct += float(np.sum(hit * batch['mask']))
    total += float(np.sum(batch['mask']))
  if not total:
    raise ValueError('The test split is empty; cannot measure accuracy.')
  return 100.0 * correct / total


# -----------------------------------------------------------------------------
# Cache.
# -----------------------------------------------------------------------------


def _abstract_params(model: CNN, image_shape: tuple[int, int, int]) -> Any:
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, *image_shape)))
  return shapes['params']


def _read_metadata(directory: str) -> dict[str, Any] | None:
  """The cache's metadata, or None if `directory` holds no complete cache."""
  path = os.path.join(directory, _METADATA_FILE)
  if not os.path.isfile(path) or not os.path.isdir(os.path.join(directory, _PARAMS_DIR)):
    return None
  with open(path) as f:
    return json.load(f)


def _load(directory: str, model: CNN, image_shape: tuple[int, int, int],
          metadata: dict[str, Any]) -> Classifier:
  # A target without shardings restores as host numpy arrays; `jnp.asarray`
  # then makes uncommitted device arrays that jit can move onto any mesh.
  with ocp.StandardCheckpointer() as checkpointer:
    params = checkpointer.restore(epath.Path(directory) / _PARAMS_DIR,
                                  _abstract_params(model, image_shape))
  return Classifier(model=model, params=jax.tree.map(jnp.asarray, params),
                    test_accuracy=float(metadata['test_accuracy']), directory=directory,
                    from_cache=True)


def _write_atomically(directory: str, params: Any, metadata: dict[str, Any]) -> None:
  """Writes the cache into a sibling temporary dir, then renames it into place."""
  parent, name = os.path.split(os.path.abspath(directory))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f'.{name}.tmp-', dir=parent)
  # mkdtemp makes it private (0700); the cache is shared by everyone who reads the data dir.
  os.chmod(tmp, 0o755)
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(epath.Path(tmp) / _PARAMS_DIR, jax.device_get(params))
      checkpointer.wait_until_finished()
    with open(os.path.join(tmp, _METADATA_FILE), 'w') as f:
      json.dump(metadata, f, indent=2, sort_keys=True)
    stale = None
    if os.path.exists(directory):
      # An outdated cache (another recipe under an explicit cache_dir): move it
      # aside first, since a directory cannot be renamed over a non-empty one.
      stale = tempfile.mkdtemp(prefix=f'.{name}.stale-', dir=parent)
      os.rename(directory, os.path.join(stale, name))
    try:
      os.rename(tmp, directory)
    except OSError:
      # Another process renamed its complete copy into place first; use that.
      if _read_metadata(directory) is None:
        raise
    if stale:
      shutil.rmtree(stale, ignore_errors=True)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def get_or_train_classifier(config: ml_collections.ConfigDict, cache_dir: str | None = None,
                            *, num_steps: int | None = None) -> Classifier | None:
  """Loads the dataset's cached classifier, training and caching it first if needed.

  Args:
    config: an lgae config; uses `dataset.*` (name, data dir, image layout).
    cache_dir: the cache directory; default `default_cache_dir(...)`.
    num_steps: training steps; None means `recipe.num_epochs` epochs. Part of
      the cache key, so tests can train a few steps without touching the real
      cache.

  Returns:
    The classifier, or None if the dataset has no class labels.

  Raises:
    input_pipeline.DataNotFoundError: the dataset is not prepared.
  """
  recipe = recipe_for(config)
  if recipe is None:
    return None
  model = build_model(recipe)
  image_shape = (int(config.dataset.image_size),) * 2 + (int(config.dataset.channels),)
  data_config = _data_config(config, recipe)
  num_train = input_pipeline.num_examples(data_config, recipe.train_split)  # Metadata only.
  key = cache_key(config, recipe, num_train_examples=num_train, num_steps=num_steps)
  directory = os.path.abspath(cache_dir or default_cache_dir(
      config, recipe, num_train_examples=num_train, num_steps=num_steps))
  metadata = _read_metadata(directory)
  if metadata is not None:
    if metadata.get('key') == json.loads(json.dumps(key)):
      logging.info('Loading the %s classifier from %s (test accuracy %.2f%%).',
                   config.dataset.name, directory, metadata['test_accuracy'])
      return _load(directory, model, image_shape, metadata)
    logging.warning('The classifier cached in %s was trained differently; retraining.',
                    directory)

  # A split smaller than a batch (test datasets) trains on full-split batches.
  data_config.batch_size = min(recipe.batch_size, num_train)
  if num_steps is None:
    num_steps = recipe.num_epochs * (num_train // data_config.batch_size)
  logging.info('Training the %s classifier for %d steps (cached in %s).',
               config.dataset.name, num_steps, directory)
  start = time.time()
  params = train(model, input_pipeline.train_iterator(data_config), num_steps,
                 learning_rate=recipe.learning_rate, seed=recipe.seed, image_shape=image_shape)
  test_accuracy = accuracy(model, params, input_pipeline.eval_iterator(data_config))
  seconds = time.time() - start
  logging.info('%s classifier: %.2f%% test accuracy after %d steps (%.0f s).',
               config.dataset.name, test_accuracy, num_steps, seconds)
  _write_atomically(directory, params, {
      'key': key, 'test_accuracy': test_accuracy, 'num_steps': num_steps,
      'batch_size': data_config.batch_size, 'train_seconds': seconds,
  })
  return Classifier(model=model, params=jax.tree.map(jnp.asarray, jax.device_get(params)),
                    test_accuracy=test_accuracy, directory=directory, from_cache=False)
