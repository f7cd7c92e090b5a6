"""Checks a config before anything is built or compiled.

Every problem is reported with the dotted name of the field at fault and what
to do, all at once, as one `ConfigError`. The schema (which fields exist and
their types) is `configs.common.get_base_config()`.
"""

from collections.abc import Sequence
import math

import ml_collections

from configs import common


class ConfigError(ValueError):
  """The config cannot describe a valid run; the message names the fields."""


def _flatten(cfg, prefix=''):
  out = {}
  for key, value in cfg.items():
    name = f'{prefix}{key}'
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      out.update(_flatten(value, name + '.'))
    else:
      out[name] = value
  return out


def _type_name(value) -> str:
  if isinstance(value, bool):
    return 'bool'
  if isinstance(value, int):
    return 'int'
  if isinstance(value, float):
    return 'float'
  if isinstance(value, str):
    return 'str'
  if isinstance(value, (tuple, list)):
    return 'sequence'
  return type(value).__name__


def _type_ok(expected, value) -> bool:
  e, v = _type_name(expected), _type_name(value)
  return e == v or (e == 'float' and v == 'int')


def _is_int(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def _positive_ints(value) -> bool:
  return isinstance(value, (tuple, list)) and all(_is_int(v) and v > 0 for v in value)


def schema_errors(config: ml_collections.ConfigDict) -> list[str]:
  """Unknown, missing and wrongly typed fields, against the base schema."""
  schema = _flatten(common.get_base_config())
  given = _flatten(config)
  errors = []
  for name in sorted(set(given) - set(schema)):
    close = [s for s in schema if s.split('.')[-1] == name.split('.')[-1] or
             _similar(s, name)]
    hint = f' Did you mean config.{close[0]}?' if close else ''
    errors.append(f'config.{name}: unknown field.{hint}')
  for name in sorted(set(schema) - set(given)):
    errors.append(f'config.{name}: missing (every config starts from configs.common).')
  for name in sorted(set(schema) & set(given)):
    if not _type_ok(schema[name], given[name]):
      errors.append(f'config.{name}: expected {_type_name(schema[name])}, got '
                    f'{given[name]!r} ({_type_name(given[name])}).')
  return errors


def _similar(a: str, b: str) -> bool:
  a, b = a.split('.')[-1], b.split('.')[-1]
  if abs(len(a) - len(b)) > 2:
    return False
  common_chars = sum(1 for x, y in zip(a, b) if x == y)
  return common_chars >= max(len(a), len(b)) - 2


def value_errors(config: ml_collections.ConfigDict, num_devices: int | None) -> list[str]:
  """Values that are well-typed but cannot work together."""
  errors = []

  def need(ok: bool, message: str):
    if not ok:
      errors.append(message)

  m, c, d, lc, o = config.model, config.codes, config.dataset, config.loss, config.optimizer
  for name in ('batch_size', 'eval_batch_size', 'num_epochs', 'log_every_steps',
               'checkpoint_every_steps', 'max_checkpoints_to_keep'):
    need(config[name] > 0, f'config.{name}={config[name]} must be > 0.')
  need(config.num_train_steps > 0 or config.num_train_steps == -1,
       f'config.num_train_steps={config.num_train_steps} must be > 0, or -1 to derive it from '
       'num_epochs.')
  need(config.eval_every_steps > 0 or config.eval_every_steps == -1,
       f'config.eval_every_steps={config.eval_every_steps} must be > 0, or -1 (only at the end).')
  need(config.model_name == 'latentgan_ae',
       f"config.model_name={config.model_name!r}: only 'latentgan_ae' exists.")
  for name in ('image_size', 'channels', 'shuffle_buffer', 'prefetch'):
    need(d[name] > 0, f'config.dataset.{name}={d[name]} must be > 0.')
  need(bool(d.name), 'config.dataset.name is empty: name a tfds dataset (e.g. mnist).')
  for name in ('latent_dim', 'encoder_kernel', 'encoder_stride', 'decoder_kernel'):
    need(m[name] > 0, f'config.model.{name}={m[name]} must be > 0.')
  for name in ('encoder_features', 'decoder_features', 'decoder_upsample', 'generator_hidden',
               'discriminator_hidden'):
    need(_positive_ints(m[name]) and len(m[name]) > 0,
         f'config.model.{name}={tuple(m[name])} must be a non-empty sequence of positive ints.')
  need(0.0 <= m.batch_norm_momentum < 1.0,
       f'config.model.batch_norm_momentum={m.batch_norm_momentum} must be in [0, 1).')

  # Image geometry: the encoder must reduce the image exactly to 1x1 (the
  # tables' last conv feeds fc-o<latent>) and the decoder must rebuild it.
  if _positive_ints(m.encoder_features) and m.encoder_stride > 0 and d.image_size > 0:
    need(d.image_size == m.encoder_stride ** len(m.encoder_features),
         f'config.dataset.image_size={d.image_size}: the encoder has '
         f'{len(m.encoder_features)} stride-{m.encoder_stride} convs and takes '
         f'{m.encoder_stride ** len(m.encoder_features)}x{m.encoder_stride ** len(m.encoder_features)}'
         ' images; change image_size or model.encoder_features.')
    need(m.encoder_kernel >= m.encoder_stride and (m.encoder_kernel - m.encoder_stride) % 2 == 0,
         f'config.model.encoder_kernel={m.encoder_kernel} must be >= encoder_stride and differ '
         'from it by an even number (symmetric padding).')
  if _positive_ints(m.decoder_upsample) and _positive_ints(m.decoder_features):
    need(len(m.decoder_upsample) == len(m.decoder_features) + 1,
         f'config.model.decoder_upsample has {len(m.decoder_upsample)} factors; it needs one per '
         f'decoder_features entry ({len(m.decoder_features)}) plus one for the output conv.')
    need(math.prod(m.decoder_upsample) == d.image_size,
         f'config.model.decoder_upsample={tuple(m.decoder_upsample)} multiplies to '
         f'{math.prod(m.decoder_upsample)}, but the decoder must output '
         f'dataset.image_size={d.image_size}.')
  need(m.decoder_kernel % 2 == 1,
       f'config.model.decoder_kernel={m.decoder_kernel} must be odd (SAME padding, as p1 for 3x3).')

  # Code layout.
  need(c.noise_dim >= 0, f'config.codes.noise_dim={c.noise_dim} must be >= 0.')
  need(c.num_continuous >= 0, f'config.codes.num_continuous={c.num_continuous} must be >= 0.')
  need(isinstance(c.categorical, Sequence) and all(_is_int(k) and k >= 2 for k in c.categorical),
       f'config.codes.categorical={tuple(c.categorical)}: every Cat(K) needs an int K >= 2.')
  need(len(c.categorical) + c.num_continuous > 0,
       'config.codes: no categorical and no continuous code; there is nothing for Q to learn.')
  if _positive_ints(tuple(c.categorical) or (1,)):
    width = c.noise_dim + sum(c.categorical) + c.num_continuous
    need(width == c.generator_input_dim,
         f'config.codes.generator_input_dim={c.generator_input_dim} but the code layout gives '
         f'noise_dim {c.noise_dim} + sum(categorical) {sum(c.categorical)} + num_continuous '
         f'{c.num_continuous} = {width}; fix the layout or the table width.')

  # Losses and optimiser.
  for name in ('lambda_disc', 'lambda_cont', 'encoder_adversarial_weight'):
    need(lc[name] >= 0, f'config.loss.{name}={lc[name]} must be >= 0.')
  for name in ('real_label', 'fake_label'):
    need(0.0 <= lc[name] <= 1.0, f'config.loss.{name}={lc[name]} must be in [0, 1].')
  need(0.0 <= lc.label_flip_prob < 0.5,
       f'config.loss.label_flip_prob={lc.label_flip_prob} must be in [0, 0.5).')
  need(o.learning_rate > 0, f'config.optimizer.learning_rate={o.learning_rate} must be > 0.')
  for name in ('b1', 'b2'):
    need(0.0 <= o[name] < 1.0, f'config.optimizer.{name}={o[name]} must be in [0, 1).')

  if num_devices:
    for name in ('batch_size', 'eval_batch_size'):
      if config[name] > 0:
        need(config[name] % num_devices == 0,
             f'config.{name}={config[name]} does not divide over the {num_devices} devices JAX '
             f'sees: use a multiple of {num_devices}.')
  return errors


def dataset_errors(config: ml_collections.ConfigDict) -> list[str]:
  """The dataset name must be a tfds builder (lgae's own builders included)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from lgae import datasets  # pylint: disable=g-import-not-at-top,unused-import
  name = config.dataset.name
  if name and name not in tfds.list_builders(with_community_datasets=False):
    return [f'config.dataset.name={name!r} is not a tfds dataset known here '
            "(e.g. 'mnist', 'rendered_chairs', 'celeb_a')."]
  return []


def validate(config: ml_collections.ConfigDict, num_devices: int | None = None,
             check_dataset: bool = True) -> None:
  """Raises ConfigError listing every problem found; returns None if valid."""
  errors = schema_errors(config)
  if not errors:  # value checks assume the schema holds.
    errors = value_errors(config, num_devices)
    if check_dataset and not errors:
      errors = dataset_errors(config)
  if errors:
    raise ConfigError('Invalid config:\n  ' + '\n  '.join(errors))
