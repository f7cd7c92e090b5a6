"""Input pipelines: tfds splits -> preprocessed numpy batches for JAX.

Training batches are deterministic and resumable: the order of epoch `e` is a
shuffle seeded only by `(config.seed, e)`, so `train_iterator(config, k)`
yields exactly the batches `k, k+1, ...` of `train_iterator(config, 0)`. A
restored checkpoint at step `k` therefore sees the same data a run that never
stopped would have seen.

Images come out as float32 NHWC in [-1, 1] (the decoder ends in tanh), at
`config.dataset.image_size` with `config.dataset.channels` channels. Datasets
are read from a tfds data dir and never downloaded: the machines we run on are
offline, so a missing dataset is reported early with the command that
prepares it (`DataNotFoundError`).

Nothing here holds global state except TensorFlow's device configuration
(`configure_tensorflow`); all randomness derives from `config.seed`.
"""

import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

# Registers the `rendered_chairs` builder with tfds.
from lgae import datasets  # noqa: F401  pylint: disable=unused-import

Batch = dict[str, np.ndarray]
Example = Mapping[str, tf.Tensor]


class DataNotFoundError(FileNotFoundError):
  """The dataset is not prepared in the data dir (it is never downloaded)."""


def configure_tensorflow() -> None:
  """Hides accelerators from TensorFlow; safe to call any number of times.

  tf.data only needs the CPU, but TensorFlow grabs (almost all) GPU memory and
  may claim TPU cores the moment its runtime starts, starving JAX. Hiding them
  must happen before TensorFlow initialises its runtime, i.e. before the first
  tf.data pipeline runs, which is why every loader here calls this first.
  """
  for device_type in ('GPU', 'TPU'):
    if not tf.config.get_visible_devices(device_type):
      continue  # None exist, or already hidden: nothing to do.
    try:
      tf.config.set_visible_devices([], device_type)
    except RuntimeError as e:
      # The runtime is already up (someone used TF first); devices can no
      # longer be hidden. Training still works, with less accelerator memory.
      logging.warning(
          'Could not hide %s devices from TensorFlow (%s); tf.data may hold '
          'accelerator memory that JAX needs.', device_type, e)


def resolve_data_dir(config: ml_collections.ConfigDict) -> str | None:
  """The tfds data dir: config, else $TFDS_DATA_DIR, else None (tfds' own)."""
  data_dir = config.dataset.data_dir or os.environ.get('TFDS_DATA_DIR')
  return os.path.expanduser(data_dir) if data_dir else None


# -----------------------------------------------------------------------------
# Per-dataset decoding.
#
# A decode function maps one tfds example to {'image': uint8 [S, S, C'],
# 'label': int32 []} at the target size S = config.dataset.image_size, still
# in [0, 255]; everything after that (channel count, scaling to [-1, 1]) is
# shared. The uint8 stage is what the training pipeline caches in memory:
# 4x smaller than float32, and all of CelebA's 32x32 crops fit in ~0.5 GB.
# -----------------------------------------------------------------------------


def _decode_mnist(example: Example, image_size: int) -> dict[str, tf.Tensor]:
  """28x28 digits padded (not resized) to image_size, as in the paper."""
  pad = image_size - 28
  if pad < 0:
    raise ValueError(f'MNIST image_size must be >= 28, got {image_size}.')
  # Pad the uint8 image with 0, the background, *before* scaling, so the
  # border is exactly the background value (-1 after scaling).
  image = tf.pad(
      example['image'], [[pad // 2, pad - pad // 2]] * 2 + [[0, 0]])
  return {'image': image, 'label': tf.cast(example['label'], tf.int32)}


# CelebA aligned faces are 218x178; the central 140x140 square holds the face
# (the crop of DCGAN/BEGAN-style CelebA pipelines), and is then resized.
_CELEBA_CROP = 140


def _decode_celeb_a(example: Example, image_size: int) -> dict[str, tf.Tensor]:
  """Centre 140x140 crop, antialiased resize; label 0 (no class labels).

  The paper's CelebA model is unsupervised and CelebA has no class, so the
  label is a constant 0 (`example['attributes']` holds the 40 binary
  attributes if a probe ever needs one).
  """
  image = example['image']
  height, width = image.shape[0], image.shape[1]
  image = tf.image.crop_to_bounding_box(
      image, (height - _CELEBA_CROP) // 2, (width - _CELEBA_CROP) // 2,
      _CELEBA_CROP, _CELEBA_CROP)
  image = _resize_uint8(image, image_size)
  return {'image': image, 'label': tf.constant(0, tf.int32)}


def _decode_rendered_chairs(
    example: Example, image_size: int) -> dict[str, tf.Tensor]:
  """Already 64x64 grayscale (see lgae.datasets.rendered_chairs); label 0.

  The chair id is a string (the model's directory name), not a class index,
  and the paper's chairs model is unsupervised, so the label is 0.
  """
  image = example['image']
  if image.shape[0] != image_size:
    image = _resize_uint8(image, image_size)
  return {'image': image, 'label': tf.constant(0, tf.int32)}


def _resize_uint8(image: tf.Tensor, size: int) -> tf.Tensor:
  # Antialiasing matters when shrinking (140 -> 32): without it bilinear
  # resizing samples only a few source pixels and aliases.
  image = tf.image.resize(image, [size, size], antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


@dataclasses.dataclass(frozen=True)
class _DatasetSpec:
  """How to decode a dataset and what to tell users when it is missing."""
  decode: Callable[[Example, int], dict[str, tf.Tensor]]
  # data dir -> instructions for preparing the dataset there.
  how_to_prepare: Callable[[str], str]


_PREPARE_DATA = 'python -m experiments.prepare_data'

_DATASETS = {
    'mnist': _DatasetSpec(
        decode=_decode_mnist,
        how_to_prepare=lambda data_dir: (
            'Prepare it from the local MNIST files with:\n'
            f'  {_PREPARE_DATA} --dataset=mnist '
            f'--source_dir=../shared/data/mnist --data_dir={data_dir}'),
    ),
    'rendered_chairs': _DatasetSpec(
        decode=_decode_rendered_chairs,
        how_to_prepare=lambda data_dir: (
            'Download rendered_chairs.tar (Aubry et al. 2014, '
            'https://www.di.ens.fr/willow/research/seeing3Dchairs/), put it '
            'in a directory DIR, and run:\n'
            f'  {_PREPARE_DATA} --dataset=rendered_chairs --source_dir=DIR '
            f'--data_dir={data_dir}'),
    ),
    'celeb_a': _DatasetSpec(
        decode=_decode_celeb_a,
        how_to_prepare=lambda data_dir: (
            'Prepare it with tfds on a machine with internet, e.g.\n'
            '  tfds build celeb_a --data_dir=DIR\n'
            f'then copy DIR/celeb_a into {data_dir}/.'),
    ),
}


def _spec(config: ml_collections.ConfigDict) -> _DatasetSpec:
  name = config.dataset.name
  if name not in _DATASETS:
    raise ValueError(
        f'Unknown dataset {name!r}; known: {", ".join(sorted(_DATASETS))}.')
  return _DATASETS[name]


def _decode(
    example: Example, config: ml_collections.ConfigDict
) -> dict[str, tf.Tensor]:
  """tfds example -> {'image': uint8 [S, S, C], 'label': int32}."""
  size, channels = config.dataset.image_size, config.dataset.channels
  decoded = _spec(config).decode(example, size)
  image = decoded['image']
  # Channel conversion is generic so that e.g. a grayscale CelebA is a config
  # change, not a code change.
  if image.shape[-1] != channels:
    if image.shape[-1] == 3 and channels == 1:
      image = tf.image.rgb_to_grayscale(image)
    elif image.shape[-1] == 1 and channels == 3:
      image = tf.image.grayscale_to_rgb(image)
    else:
      raise ValueError(
          f'Cannot turn {image.shape[-1]}-channel {config.dataset.name} '
          f'images into dataset.channels={channels}.')
  image = tf.ensure_shape(image, [size, size, channels])
  return {'image': image, 'label': decoded['label']}


def _to_model_input(decoded: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
  """uint8 [0, 255] -> float32 [-1, 1]; works on single examples and batches."""
  image = tf.cast(decoded['image'], tf.float32) / 127.5 - 1.0
  return {'image': image, 'label': decoded['label']}


def preprocess(
    example: Example, config: ml_collections.ConfigDict
) -> dict[str, tf.Tensor]:
  """Maps one tfds example to the model's input.

  Args:
    example: a tfds example of `config.dataset.name` (uint8 'image', ...).
    config: uses `dataset.{name, image_size, channels}`.

  Returns:
    {'image': float32 [image_size, image_size, channels] in [-1, 1],
     'label': int32 []} (label 0 for datasets without classes).
  """
  return _to_model_input(_decode(example, config))


# -----------------------------------------------------------------------------
# Loading.
# -----------------------------------------------------------------------------


def _builder(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  configure_tensorflow()
  _spec(config)  # Fail on unknown names before tfds does, with a clear list.
  return tfds.builder(config.dataset.name, data_dir=resolve_data_dir(config))


def _load_split(
    config: ml_collections.ConfigDict, split: str) -> tf.data.Dataset:
  """Raw tfds examples of `split` in their stored order; never downloads."""
  builder = _builder(config)
  try:
    return builder.as_dataset(
        split=split,
        shuffle_files=False,  # Order must depend on config.seed only.
        # We cache ourselves, after decoding and dropping unused features.
        read_config=tfds.ReadConfig(try_autocache=False),
    )
  except AssertionError as e:
    # tfds signals "not prepared" with a bare AssertionError ("could not
    # find data in ..."); check the cause ourselves rather than parse it.
    if builder.data_path.exists():
      raise
    data_dir = os.fspath(builder.data_dir_root)
    raise DataNotFoundError(
        f'Dataset {config.dataset.name!r} (version {builder.version}) is not '
        f'prepared in the tfds data dir {data_dir} (it is never downloaded). '
        + _spec(config).how_to_prepare(data_dir)) from e


def _cardinality(ds: tf.data.Dataset) -> int:
  n = int(ds.cardinality())
  if n < 0:  # tf.data.INFINITE_CARDINALITY or UNKNOWN_CARDINALITY.
    raise ValueError(f'tfds split has no known size (cardinality {n}).')
  return n


def num_examples(config: ml_collections.ConfigDict, split: str) -> int:
  """Number of examples in `split` (e.g. 'train', 'train[:2%]'); reads no data.

  Raises:
    DataNotFoundError: the dataset is not prepared.
  """
  builder = _builder(config)
  if builder.info.splits:
    return builder.info.splits[split].num_examples
  # No split metadata: the dataset is not prepared (`_load_split` raises), or
  # tfds is mocked (`tfds.testing.mock_data` without metadata files), where
  # the pipeline's own size is the only truth.
  return _cardinality(_load_split(config, split))


def check_available(config: ml_collections.ConfigDict) -> None:
  """Raises now, before anything is built, if a split the run needs is missing.

  Reads metadata only.

  Raises:
    DataNotFoundError: the dataset is not prepared in the data dir.
  """
  for split in (config.dataset.train_split, config.dataset.eval_split):
    num_examples(config, split)


def steps_per_epoch(config: ml_collections.ConfigDict) -> int:
  """Full training batches per epoch (the remainder is dropped)."""
  return num_examples(config, config.dataset.train_split) // config.batch_size


def _options() -> tf.data.Options:
  options = tf.data.Options()
  # Parallel map/interleave must keep element order, or batches would differ
  # between runs and resuming would not reproduce them.
  options.deterministic = True
  return options


def _epoch_seed(seed: int, epoch: int) -> int:
  """A shuffle seed for `epoch`, a pure function of (seed, epoch).

  SeedSequence hashes the pair, so neighbouring seeds or epochs give unrelated
  orders (plain `seed + epoch` would make run s, epoch 1 repeat run s+1,
  epoch 0).
  """
  entropy = [seed & 0xFFFF_FFFF_FFFF_FFFF, epoch]  # SeedSequence wants >= 0.
  state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)
  # tf.data reduces op seeds modulo 2**31 - 1 anyway; do it here so the
  # value we compute is the one that is used.
  return int(state[0]) % (2**31 - 1)


def train_iterator(
    config: ml_collections.ConfigDict, start_step: int = 0) -> Iterator[Batch]:
  """Endless training batches, resumable at any step.

  Epoch `e` visits the train split in an order shuffled with a seed derived
  from `(config.seed, e)` only, and yields its `n // batch_size` full batches
  (the remainder is dropped). Starting at `start_step` skips the consumed
  epochs and the consumed examples of the current epoch, so the result equals
  batches `start_step, start_step + 1, ...` of `train_iterator(config)`.

  The orders also depend on TensorFlow's global seed, which lgae never sets
  (`tf.random.set_seed` would change them).

  Args:
    config: uses `seed`, `batch_size` (global) and `dataset.*`.
    start_step: number of batches already consumed.

  Returns:
    An iterator of {'image': float32 [B, S, S, C] in [-1, 1], 'label': int32
    [B]} numpy batches, B = config.batch_size.

  Raises:
    DataNotFoundError: at call time (not at the first batch) if the dataset
      is not prepared.
    ValueError: the split holds fewer examples than one batch.
  """
  if start_step < 0:
    raise ValueError(f'start_step must be >= 0, got {start_step}.')
  batch_size = config.batch_size
  split = config.dataset.train_split
  decode = lambda example: _decode(example, config)
  # Decoded uint8 examples in stored order, decoded once and then held in
  # memory; each epoch's pipeline below reads this same cache.
  examples = _load_split(config, split).map(
      decode, num_parallel_calls=tf.data.AUTOTUNE).cache()
  size = _cardinality(examples)
  batches_per_epoch = size // batch_size
  if batches_per_epoch == 0:
    raise ValueError(
        f'{config.dataset.name} {split!r} has {size} examples, fewer than '
        f'batch_size={batch_size}.')
  # A buffer larger than the split holds the same elements: cap it.
  shuffle_buffer = min(config.dataset.shuffle_buffer, size)
  options = _options()

  def epoch_batches(epoch: int, skip: int) -> tf.data.Dataset:
    ds = examples.shuffle(
        shuffle_buffer, seed=_epoch_seed(config.seed, epoch),
        # A fresh pipeline per epoch carries the epoch's own seed; within it
        # the order must not change if tf.data re-iterates.
        reshuffle_each_iteration=False)
    # Skipping examples (cheap, from the cache) rather than batches avoids
    # batching and scaling data that is thrown away.
    ds = ds.skip(skip * batch_size)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(_to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(config.dataset.prefetch)
    return ds.with_options(options)

  def generate() -> Iterator[Batch]:
    epoch, skip = divmod(start_step, batches_per_epoch)
    while True:
      yield from epoch_batches(epoch, skip).as_numpy_iterator()
      epoch, skip = epoch + 1, 0

  # `generate` is a nested generator so that this function runs (and raises
  # DataNotFoundError) when called, before any training starts.
  return generate()


def _pad_batch(batch: Batch, batch_size: int) -> Batch:
  """Pads the leading axis to `batch_size` with zeros and adds 'mask'."""
  n = len(batch['label'])
  mask = np.zeros([batch_size], np.float32)
  mask[:n] = 1.0
  padded = {
      key: np.pad(value, [(0, batch_size - n)] + [(0, 0)] * (value.ndim - 1))
      for key, value in batch.items()
  }
  padded['mask'] = mask
  return padded


def eval_iterator(
    config: ml_collections.ConfigDict, split: str | None = None
) -> Iterator[Batch]:
  """One pass over an evaluation split, in stored order, in fixed-size batches.

  Every batch has exactly `config.eval_batch_size` rows so that a jitted eval
  step compiles once: the last batch is zero-padded and 'mask' tells real rows
  (1.0) from padding (0.0); `sum(mask)` over the pass is the split's size.

  Args:
    config: uses `eval_batch_size` and `dataset.*`.
    split: tfds split; defaults to `config.dataset.eval_split`.

  Returns:
    An iterator of {'image': float32 [B, S, S, C], 'label': int32 [B],
    'mask': float32 [B]} numpy batches, B = config.eval_batch_size.

  Raises:
    DataNotFoundError: at call time if the dataset is not prepared.
  """
  split = split or config.dataset.eval_split
  batch_size = config.eval_batch_size
  ds = _load_split(config, split)
  ds = ds.map(lambda example: _decode(example, config),
              num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(batch_size)  # Keeps the remainder; padded below.
  ds = ds.map(_to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.prefetch(config.dataset.prefetch).with_options(_options())

  def generate() -> Iterator[Batch]:
    for batch in ds.as_numpy_iterator():
      yield _pad_batch(batch, batch_size)

  return generate()
