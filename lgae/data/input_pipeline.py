"""Input pipelines: tfds splits -> preprocessed numpy batches for JAX.

Training batches are deterministic and resumable: the order of epoch `e` is a
shuffle seeded only by `(config.seed, e)`, so `train_iterator(config, k)`
yields exactly the batches `k, k+1, ...` of `train_iterator(config, 0)`. A
restored checkpoint at step `k` therefore sees the same data a run that never
stopped would have seen.

Images come out as float32 NHWC in [-1, 1] (the decoder ends in tanh), at
`config.dataset.image_size` with `config.dataset.channels` channels. Any tfds
dataset with a uint8 `image` feature works: the preprocessing (crop, resize or
pad, channels) is chosen by `config.dataset`, not by the dataset's name, and
class labels come from a ClassLabel `label` feature where there is one.

Datasets are read from a tfds data dir. One that is not prepared there is
downloaded and prepared by tfds if `config.dataset.download` (the default);
where that is off or fails (an offline machine), it is reported early, before
anything is compiled, with the offline way to prepare it (`DataNotFoundError`).

Nothing here holds global state except TensorFlow's device configuration
(`configure_tensorflow`); all randomness derives from `config.seed`.
"""

import inspect
import os
import socket
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

# Importing lgae.data registers the `rendered_chairs` builder with tfds.
from lgae import errors
from lgae.data import mnist_local, rendered_chairs

Batch = dict[str, np.ndarray]
Example = Mapping[str, tf.Tensor]


class DataNotFoundError(errors.UserError, FileNotFoundError):
  """The dataset is not prepared in the data dir and was not downloaded."""


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
# Preprocessing: the same steps for every tfds image dataset, chosen by the
# config rather than by the dataset's name.
#
# `_decode` maps one tfds example to {'image': uint8 [S, S, C], 'label': int32
# []} (S = dataset.image_size, C = dataset.channels), still in [0, 255]:
# central square crop (dataset.crop) -> S x S (dataset.resize) -> C channels.
# Scaling to [-1, 1] comes after, shared by all. The uint8 stage is what the
# training pipeline caches in memory: 4x smaller than float32, and all of
# CelebA's 32x32 crops fit in ~0.5 GB.
# -----------------------------------------------------------------------------

# Values of config.dataset.resize: how an image that is not S x S becomes so.
#   'resize': antialiased bilinear resize (aspect ratio not kept: crop first).
#   'pad': centred on an S x S background of 0 (MNIST's 28 -> 32, as in the
#     paper); the image must not be larger than S.
RESIZE_METHODS = ('resize', 'pad')


def _central_crop(image: tf.Tensor, size: int) -> tf.Tensor:
  """The central size x size square (odd margins: one more pixel below/right).

  CelebA's aligned 218x178 faces with size 140 give the 140x140 square at
  (39, 19) that DCGAN/BEGAN-style CelebA pipelines use.
  """
  shape = tf.shape(image)
  return tf.image.crop_to_bounding_box(
      image, (shape[0] - size) // 2, (shape[1] - size) // 2, size, size)


def _pad(image: tf.Tensor, size: int) -> tf.Tensor:
  """Centres the image on a size x size canvas of 0, the background.

  Padding happens on the uint8 image, before scaling, so the border is exactly
  the background value (-1 after scaling).
  """
  if any(s is not None and s > size for s in image.shape[:2]):
    raise ValueError(
        f"dataset.resize='pad' cannot shrink {image.shape[0]}x{image.shape[1]} "
        f"images to image_size={size}: use resize='resize' (and crop).")
  shape = tf.shape(image)
  return tf.image.pad_to_bounding_box(
      image, (size - shape[0]) // 2, (size - shape[1]) // 2, size, size)


def _resize(image: tf.Tensor, size: int) -> tf.Tensor:
  if image.shape[0] == size and image.shape[1] == size:
    return image  # Already S x S: skip the float round trip.
  # Antialiasing matters when shrinking (140 -> 32): without it bilinear
  # resizing samples only a few source pixels and aliases.
  image = tf.image.resize(image, [size, size], antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _to_channels(image: tf.Tensor, channels: int, name: str) -> tf.Tensor:
  """Grey <-> RGB, so that e.g. a grayscale CelebA is a config change."""
  if image.shape[-1] == channels:
    return image
  if image.shape[-1] == 3 and channels == 1:
    return tf.image.rgb_to_grayscale(image)
  if image.shape[-1] == 1 and channels == 3:
    return tf.image.grayscale_to_rgb(image)
  raise ValueError(
      f'Cannot turn {image.shape[-1]}-channel {name} images into '
      f'dataset.channels={channels}.')


def _decode(
    example: Example, config: ml_collections.ConfigDict, with_factors: bool = False
) -> dict[str, tf.Tensor]:
  """tfds example -> {'image': uint8 [S, S, C], 'label': int32}.

  With `with_factors` and a dataset with ground-truth factors
  (`factor_names`), also 'factors': int32 [num_factors].
  """
  d = config.dataset
  image = example['image']
  if d.get('pixel_max', 255) != 255:
    # Stored on another scale (dSprites: 0/1): to 0..255 before any resampling.
    image = tf.cast(tf.round(tf.cast(image, tf.float32) * (255.0 / d.pixel_max)), tf.uint8)
  if d.crop:
    image = _central_crop(image, d.crop)
  if d.resize == 'pad':
    image = _pad(image, d.image_size)
  else:
    image = _resize(image, d.image_size)
  image = _to_channels(image, d.channels, d.name)
  image = tf.ensure_shape(image, [d.image_size, d.image_size, d.channels])
  # Traced once per pipeline, so the builder lookup is not per example.
  if has_class_labels(config):
    label = tf.cast(example['label'], tf.int32)
  else:
    label = tf.constant(0, tf.int32)
  decoded = {'image': image, 'label': label}
  if with_factors:
    names = factor_names(config)
    if names:
      decoded['factors'] = tf.stack([tf.cast(example[n], tf.int32) for n in names])
  return decoded


def _to_model_input(decoded: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
  """uint8 [0, 255] -> float32 [-1, 1]; works on single examples and batches."""
  image = tf.cast(decoded['image'], tf.float32) / 127.5 - 1.0
  return {**decoded, 'image': image}


def preprocess(
    example: Example, config: ml_collections.ConfigDict
) -> dict[str, tf.Tensor]:
  """Maps one tfds example to the model's input.

  Args:
    example: a tfds example of `config.dataset.name` (uint8 'image', and
      'label' if the dataset has class labels).
    config: uses `dataset.{name, data_dir, image_size, channels, crop,
      resize}`.

  Returns:
    {'image': float32 [image_size, image_size, channels] in [-1, 1],
     'label': int32 []} (label 0 for datasets without class labels).
  """
  return _to_model_input(_decode(example, config))


# -----------------------------------------------------------------------------
# What the dataset holds, from its tfds features (no data is read).
# -----------------------------------------------------------------------------


def dataset_features(
    config: ml_collections.ConfigDict) -> tfds.features.FeaturesDict:
  """The tfds features of `config.dataset.name`; never downloads.

  From the prepared dataset's metadata if there is one, else from the
  builder's code.
  """
  return _builder(config).info.features


def _has_class_labels(features: tfds.features.FeaturesDict) -> bool:
  # tfds' convention for classification datasets: a ClassLabel named 'label'.
  return 'label' in features and isinstance(
      features['label'], tfds.features.ClassLabel)


def _factor_names(features: tfds.features.FeaturesDict) -> tuple[str, ...]:
  # tfds' convention for ground-truth generative factors (dsprites, shapes3d,
  # smallnorb): ClassLabel features named 'label_<factor>'.
  return tuple(name for name, feature in features.items()
               if name.startswith('label_') and isinstance(feature, tfds.features.ClassLabel))


def factor_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The dataset's ground-truth factor features, in tfds' order; () if none.

  These are what the disentanglement scores are measured against (dSprites:
  label_orientation, label_scale, label_shape, label_x_position,
  label_y_position).
  """
  return _factor_names(dataset_features(config))


def has_class_labels(config: ml_collections.ConfigDict) -> bool:
  """Whether the dataset's examples carry a class ('label', a ClassLabel).

  Datasets without one (CelebA, 3D Chairs: their `chair_id` is a string)
  get the constant label 0.
  """
  return _has_class_labels(dataset_features(config))


def feature_errors(config: ml_collections.ConfigDict) -> list[str]:
  """Why the dataset's images cannot become what `config.dataset` asks for.

  Checks what the tfds features tell before any data is read (image sizes
  that vary per example are left to the pipeline). Messages name the field.
  """
  d = config.dataset
  features = dataset_features(config)
  image = features['image'] if 'image' in features else None
  if not isinstance(image, tfds.features.Image):
    return [f"config.dataset.name={d.name!r} has no 'image' feature "
            f"(features: {', '.join(features.keys())}); lgae reads tfds "
            "datasets with an 'image' Image feature."]
  if image.tf_dtype != tf.uint8:
    return [f'config.dataset.name={d.name!r}: its images are '
            f'{image.tf_dtype.name}, lgae reads uint8 images.']
  errors = []
  height, width, stored = image.shape
  if stored != d.channels and {stored, d.channels} != {1, 3}:
    errors.append(
        f'config.dataset.channels={d.channels}: {d.name} images have '
        f'{stored} channels, and only 1 <-> 3 can be converted.')
  if d.crop:
    if any(s is not None and s < d.crop for s in (height, width)):
      errors.append(
          f'config.dataset.crop={d.crop} is larger than the '
          f'{height}x{width} {d.name} images.')
    height = width = d.crop
  if d.resize == 'pad':
    if any(s is not None and s > d.image_size for s in (height, width)):
      errors.append(
          f"config.dataset.resize='pad' cannot shrink {height}x{width} "
          f"images to image_size={d.image_size}: use resize='resize' "
          '(and crop).')
  return errors


# -----------------------------------------------------------------------------
# Loading, and downloading where allowed.
# -----------------------------------------------------------------------------

_PREPARE_DATA = 'python -m experiments.prepare_data'


def offline_route(name: str, data_dir: str) -> str:
  """How to prepare tfds' `name` in `data_dir` without internet."""
  if name in mnist_local.BUILDERS:
    return (
        f'Without internet, prepare it from a directory DIR holding its four '
        f'IDX files ({", ".join(mnist_local.SOURCE_FILES)}) with:\n'
        f'  {_PREPARE_DATA} --dataset={name} --source_dir=DIR '
        f'--data_dir={data_dir}')
  if name == rendered_chairs.RenderedChairs.name:
    return (
        'It is never downloaded: get rendered_chairs.tar (Aubry et al. 2014, '
        'https://www.di.ens.fr/willow/research/seeing3Dchairs/), put it in a '
        'directory DIR, and run:\n'
        f'  {_PREPARE_DATA} --dataset=rendered_chairs --source_dir=DIR '
        f'--data_dir={data_dir}')
  return (
      'Prepare it on a machine with internet, e.g.\n'
      f'  tfds build {name} --data_dir=DIR\n'
      f'then copy DIR/{name} into {data_dir}/.')


def _not_prepared(
    config: ml_collections.ConfigDict, builder: tfds.core.DatasetBuilder,
    download_failure: str | None) -> DataNotFoundError:
  data_dir = os.fspath(builder.data_dir_root)
  if download_failure is None:
    why = 'downloading is off (config.dataset.download=False)'
  else:
    why = f'downloading it failed: {download_failure}'
  return DataNotFoundError(
      f'Dataset {config.dataset.name!r} (version {builder.version}) is not '
      f'prepared in the tfds data dir {data_dir}, and {why}. '
      + offline_route(builder.name, data_dir))


# tfds' own `download_and_prepare` (as stored on the class: tfds' logging
# decorator makes every attribute access a new object), to tell it from
# replacements such as `tfds.testing.mock_data`'s no-op, about which
# `_offline_reason` has nothing to say.
_TFDS_DOWNLOAD_AND_PREPARE = inspect.getattr_static(
    tfds.core.DatasetBuilder, 'download_and_prepare')


def _offline_reason(builder: tfds.core.DatasetBuilder) -> str | None:
  """Why tfds' download cannot work here, found in milliseconds; else None.

  Offline, tfds retries every URL ten times with exponential backoff and
  gives up only after ~3.5 minutes. A name lookup of the hosts its checksum
  record lists fails at once instead. Only a clear "no host resolves" counts;
  anything uncertain (a proxy, no URL record) is left to tfds to try.
  """
  if (inspect.getattr_static(type(builder), 'download_and_prepare')
      is not _TFDS_DOWNLOAD_AND_PREPARE):
    return None
  if urllib.request.getproxies():  # The proxy resolves names, not us.
    return None
  try:
    url_infos = type(builder).url_infos or {}
  except Exception:  # pylint: disable=broad-except
    return None  # No record readable here; tfds' own attempt will tell.
  hosts = sorted(
      {urllib.parse.urlsplit(url).hostname for url in url_infos} - {None})
  for host in hosts:
    try:
      socket.getaddrinfo(host, None)
      return None
    except OSError:
      continue
  return f'cannot resolve {", ".join(hosts)} (no network?)' if hosts else None


def _download_and_prepare(
    config: ml_collections.ConfigDict,
    builder: tfds.core.DatasetBuilder) -> None:
  """Has tfds download and prepare the dataset; DataNotFoundError if not."""
  reason = _offline_reason(builder)
  cause = None
  if reason is None:
    logging.info('Dataset %s is not prepared in %s: downloading it '
                 '(config.dataset.download=True).', builder.name,
                 builder.data_dir_root)
    try:
      builder.download_and_prepare()
      return
    # Whatever stopped tfds (no network, a manual download, a checksum), the
    # user needs the same thing: the offline route. The cause is chained.
    except Exception as e:  # pylint: disable=broad-except
      first_line = (str(e).strip().splitlines() or [''])[0]
      reason, cause = f'{type(e).__name__}: {first_line}', e
  raise _not_prepared(config, builder, reason) from cause


def _builder(
    config: ml_collections.ConfigDict, download: bool = False
) -> tfds.core.DatasetBuilder:
  """The dataset's tfds builder; first downloads the data if `download`."""
  configure_tensorflow()
  builder = tfds.builder(config.dataset.name, data_dir=resolve_data_dir(config))
  # The test tfds itself uses for "prepared" (a completed data dir).
  if download and not builder.data_path.exists():
    _download_and_prepare(config, builder)
  return builder


def _load_split(
    config: ml_collections.ConfigDict, split: str,
    download: bool | None = None) -> tf.data.Dataset:
  """Raw tfds examples of `split` in their stored order.

  Downloads the dataset first if it is not prepared and `download` (default:
  `config.dataset.download`).
  """
  if download is None:
    download = config.dataset.download
  builder = _builder(config, download)
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
    raise _not_prepared(config, builder, None) from e


def _cardinality(ds: tf.data.Dataset) -> int:
  n = int(ds.cardinality())
  if n < 0:  # tf.data.INFINITE_CARDINALITY or UNKNOWN_CARDINALITY.
    raise ValueError(f'tfds split has no known size (cardinality {n}).')
  return n


def num_examples(
    config: ml_collections.ConfigDict, split: str,
    allow_download: bool = True) -> int:
  """Number of examples in `split` (e.g. 'train', 'train[:2%]'); reads no data.

  Args:
    config: uses `dataset.*`.
    split: a tfds split.
    allow_download: if False, never download, whatever
      `config.dataset.download` says (metadata checks use this).

  Raises:
    DataNotFoundError: the dataset is not prepared (and was not downloaded).
  """
  download = allow_download and config.dataset.download
  builder = _builder(config, download)
  if builder.info.splits:
    return builder.info.splits[split].num_examples
  # No split metadata: the dataset is not prepared (`_load_split` raises), or
  # tfds is mocked (`tfds.testing.mock_data` without metadata files), where
  # the pipeline's own size is the only truth.
  return _cardinality(_load_split(config, split, download))


def check_available(config: ml_collections.ConfigDict) -> None:
  """Raises now, before anything is built, if a split the run needs is missing.

  Reads metadata only; downloads and prepares the dataset first if it is
  missing and `config.dataset.download` is on.

  Raises:
    DataNotFoundError: the dataset is not prepared in the data dir, and
      downloading it is off or failed.
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


def process_rows(batch_size: int, process_index: int,
                 process_count: int) -> slice:
  """The rows of a global batch that process `process_index` feeds.

  Process p of P feeds rows [p * B / P, (p + 1) * B / P): every process
  walks the same globally shuffled order and keeps its block, so a global
  batch is the same whatever the number of processes (and P processes train
  exactly as one does). `lgae.core.parallel.make_mesh` orders devices to match.

  Raises:
    ValueError: B does not divide by P, or the index is out of range.
  """
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index={process_index} is not in 0..{process_count - 1}.')
  if batch_size % process_count:
    raise ValueError(
        f'A global batch of {batch_size} does not split over {process_count} processes: '
        f'use a multiple of {process_count} (processes x local devices).')
  rows = batch_size // process_count
  return slice(process_index * rows, (process_index + 1) * rows)


def train_iterator(
    config: ml_collections.ConfigDict, start_step: int = 0, *,
    process_index: int = 0, process_count: int = 1) -> Iterator[Batch]:
  """Endless training batches, resumable at any step.

  Epoch `e` visits the train split in an order shuffled with a seed derived
  from `(config.seed, e)` only, and yields its `n // batch_size` full batches
  (the remainder is dropped). Starting at `start_step` skips the consumed
  epochs and the consumed examples of the current epoch, so the result equals
  batches `start_step, start_step + 1, ...` of `train_iterator(config)`.

  The orders also depend on TensorFlow's global seed, which lgae never sets
  (`tf.random.set_seed` would change them).

  With several processes each one yields only its rows of every global batch
  (`process_rows`): the batches do not depend on the process count.

  Args:
    config: uses `seed`, `batch_size` (global) and `dataset.*`.
    start_step: number of batches already consumed.
    process_index: this process (`jax.process_index()`).
    process_count: processes feeding the global batch (`jax.process_count()`).

  Returns:
    An iterator of {'image': float32 [B, S, S, C] in [-1, 1], 'label': int32
    [B]} numpy batches, B = config.batch_size / process_count.

  Raises:
    DataNotFoundError: at call time (not at the first batch) if the dataset
      is not prepared.
    ValueError: the split holds fewer examples than one batch.
  """
  if start_step < 0:
    raise ValueError(f'start_step must be >= 0, got {start_step}.')
  batch_size = config.batch_size
  rows = process_rows(batch_size, process_index, process_count)
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
    if process_count > 1:
      # This process's block of the global batch, cut while still uint8:
      # only its own rows are scaled and handed to JAX.
      ds = ds.map(lambda batch: {k: v[rows] for k, v in batch.items()})
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
    config: ml_collections.ConfigDict, split: str | None = None, *,
    process_index: int = 0, process_count: int = 1) -> Iterator[Batch]:
  """One pass over an evaluation split, in stored order, in fixed-size batches.

  Every batch has exactly `config.eval_batch_size` rows so that a jitted eval
  step compiles once: the last batch is zero-padded and 'mask' tells real rows
  (1.0) from padding (0.0); `sum(mask)` over the pass is the split's size.

  With several processes each one yields only its rows of every (padded)
  global batch (`process_rows`); the global batches, and so the scores, do
  not depend on the process count.

  Args:
    config: uses `eval_batch_size` and `dataset.*`.
    split: tfds split; defaults to `config.dataset.eval_split`.
    process_index: this process (`jax.process_index()`).
    process_count: processes feeding the global batch (`jax.process_count()`).

  Returns:
    An iterator of {'image': float32 [B, S, S, C], 'label': int32 [B],
    'mask': float32 [B]} numpy batches (and 'factors': int32 [B, F] where the
    dataset has ground-truth factors, `factor_names`), B = config.eval_batch_size /
    process_count.

  Raises:
    DataNotFoundError: at call time if the dataset is not prepared.
  """
  split = split or config.dataset.eval_split
  batch_size = config.eval_batch_size
  rows = process_rows(batch_size, process_index, process_count)
  ds = _load_split(config, split)
  ds = ds.map(lambda example: _decode(example, config, with_factors=True),
              num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(batch_size)  # Keeps the remainder; padded below.
  ds = ds.map(_to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.prefetch(config.dataset.prefetch).with_options(_options())

  def generate() -> Iterator[Batch]:
    for batch in ds.as_numpy_iterator():
      yield {k: v[rows] for k, v in _pad_batch(batch, batch_size).items()}

  return generate()
