"""Checks a config before anything is built or compiled.

Every problem is reported with the dotted name of the field at fault and what
to do, all at once, as one `ConfigError`. The schema (which fields exist and
their types) is `lgae.core.config.schema` of the chosen method (`method_schema`);
the method checks its own values (`Method.validate`); the dataset check also
reads the prepared dataset's metadata (split names and sizes).

`parse_flags` is a drop-in absl flags parser that also turns an override of a
field the config does not have into a one-line usage error.
"""

import difflib
import math
import os
import re
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

import ml_collections
from absl import flags

from lgae import errors
from lgae.core import config as config_lib
from lgae.core import method as method_lib


# Values of config.dataset.resize (lgae.data.input_pipeline.RESIZE_METHODS; kept
# here too so that checking a config does not import TensorFlow).
RESIZE_METHODS = ('resize', 'pad')

# The fewest eval examples the evaluation can score: its k-NN scores
# (`lgae.evaluation.metrics.neighbour_label_agreement`, k=10) need more points than neighbours.
MIN_EVAL_EXAMPLES = 11


class ConfigError(errors.UserError, ValueError):
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


def positive_ints(value) -> bool:
  """A tuple or list of ints > 0 (bools excluded)."""
  return isinstance(value, (tuple, list)) and all(_is_int(v) and v > 0 for v in value)


def _method_or_none(name):
  try:
    return method_lib.get(name)
  except ValueError:
    return None   # reported by value_errors.


def method_schema(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The fields a config of `config.model_name` has (`lgae.core.config.schema`).

  The shared fields alone when the name is not a method's (value_errors says so).
  """
  method = _method_or_none(config.get('model_name', ''))
  return config_lib.schema(method) if method is not None else config_lib.base_config()


def fill_new_fields(config: ml_collections.ConfigDict) -> list[str]:
  """Adds, in place, the schema fields `config` lacks, at their defaults.

  For a config saved by an older lgae (checkpoints): a field added since then
  gets the default that reproduces the behaviour before it existed (the rule
  for every new option, e.g. `model.encoder_trunk='own'`), so old runs still
  load and resume. Returns the dotted names filled; fields the saved config
  has are never changed.
  """
  schema = _flatten(method_schema(config))
  filled = []
  with config.unlocked():
    for name in sorted(set(schema) - set(_flatten(config))):
      *groups, leaf = name.split('.')
      node = config
      for group in groups:
        if group not in node:
          node[group] = ml_collections.ConfigDict()
        node = node[group]
        if not isinstance(node, ml_collections.ConfigDict):
          break   # A group replaced by a value: schema_errors reports it.
      else:
        node[leaf] = schema[name]
        filled.append(name)
  return filled


def drop_removed_fields(config: ml_collections.ConfigDict) -> list[str]:
  """Removes, in place, the fields `config` has but its method's schema does not.

  For a config saved by an older lgae (checkpoints): e.g. the LatentGAN-AE's
  schedule fields, which every method's config once carried. Nothing in
  today's code reads such a field, so dropping it changes no behaviour.
  Returns the dotted names dropped. A config whose `model_name` is no method's
  is left as it is (validation reports it).
  """
  if _method_or_none(config.get('model_name', '')) is None:
    return []
  schema = _flatten(method_schema(config))
  groups = {name.rsplit('.', 1)[0] for name in schema if '.' in name}
  dropped = []
  with config.unlocked():
    for name in sorted(set(_flatten(config)) - set(schema)):
      *parents, leaf = name.split('.')
      if name in groups or any('.'.join(parents[:i + 1]) in schema for i in range(len(parents))):
        continue   # a group replaced by a value or the reverse: not a removed field.
      node = config
      for part in parents:
        node = node[part]
      del node[leaf]
      dropped.append(name)
    for group in sorted({n.rsplit('.', 1)[0] for n in dropped if '.' in n}, key=len,
                        reverse=True):
      *parents, leaf = group.split('.')
      node = config
      for part in parents:
        node = node[part]
      if isinstance(node.get(leaf), ml_collections.ConfigDict) and not node[leaf]:
        del node[leaf]
  return dropped


def schema_errors(config: ml_collections.ConfigDict) -> list[str]:
  """Unknown, missing and wrongly typed fields, against the method's schema."""
  try:
    method_lib.get(config.get('model_name', ''))
  except ValueError as e:   # Without a method there is no schema to check the rest against.
    return [f'config.model_name={config.get("model_name", "")!r}: {e}']
  schema = _flatten(method_schema(config))
  given = _flatten(config)
  groups = {name.rsplit('.', 1)[0] for name in schema if '.' in name}
  errors = []
  for name in sorted(set(given) - set(schema)):
    if name in groups:  # e.g. `config.loss = 1.0`: a whole group replaced.
      errors.append(f'config.{name}: expected a group of fields (config.{name}.*), got '
                    f'{given[name]!r}.')
      continue
    hint = _closest(name, schema)
    hint = f' Did you mean config.{hint}?' if hint else ''
    errors.append(f'config.{name}: unknown field.{hint}')
  for name in sorted(set(schema) - set(given)):
    parents = ['.'.join(name.split('.')[:i]) for i in range(1, name.count('.') + 1)]
    if any(g.startswith(name + '.') for g in given) or any(p in given for p in parents):
      continue  # A field replaced by a group, or a group by a value: reported above.
    errors.append(f'config.{name}: missing (every config starts from configs.common).')
  for name in sorted(set(schema) & set(given)):
    if not _type_ok(schema[name], given[name]):
      errors.append(f'config.{name}: expected {_type_name(schema[name])}, got '
                    f'{given[name]!r} ({_type_name(given[name])}).')
  return errors


def _closest(name: str, schema) -> str | None:
  """The schema field a user most likely meant by the unknown `name`."""
  leaf = name.rsplit('.', 1)[-1]
  # Right name, wrong group (`config.learning_rate` for optimizer.learning_rate).
  same_leaf = [s for s in schema if s.rsplit('.', 1)[-1] == leaf]
  if same_leaf:
    return same_leaf[0]
  # A typo (`loss.lamda_disc`): compare whole dotted names so that a near
  # miss in the right group wins over one elsewhere.
  close = difflib.get_close_matches(name, list(schema), n=1, cutoff=0.75)
  return close[0] if close else None


def value_errors(config: ml_collections.ConfigDict, num_devices: int | None,
                 num_processes: int = 1) -> list[str]:
  """Values that are well-typed but cannot work together."""
  errors = []

  def need(ok: bool, message: str):
    if not ok:
      errors.append(message)

  c, d, lc, o = config.codes, config.dataset, config.loss, config.optimizer
  # Every number must be finite (an `inf` learning rate or weight only fails
  # as a non-finite loss, with no checkpoint to fall back on), and the seed
  # must fit the 64-bit integer PRNGKey takes.
  for name, value in _flatten(config).items():
    values = value if isinstance(value, (tuple, list)) else (value,)
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
      errors.append(f'config.{name}={value!r} must be a finite number.')
  need(0 <= config.seed < 2**63,
       f'config.seed={config.seed} must be in [0, 2**63) (a non-negative 64-bit integer).')
  for name in ('batch_size', 'eval_batch_size', 'num_epochs', 'log_every_steps',
               'checkpoint_every_steps', 'max_checkpoints_to_keep'):
    need(config[name] > 0, f'config.{name}={config[name]} must be > 0.')
  need(config.num_train_steps > 0 or config.num_train_steps == -1,
       f'config.num_train_steps={config.num_train_steps} must be > 0, or -1 to derive it from '
       'num_epochs.')
  need(config.eval_every_steps > 0 or config.eval_every_steps in (-1, 0),
       f'config.eval_every_steps={config.eval_every_steps} must be > 0, -1 (only at the end) or '
       '0 (never during training: score the checkpoint with experiments.evaluate).')
  try:
    method = method_lib.get(config.model_name)
  except ValueError as e:
    method = None
    errors.append(f'config.model_name={config.model_name!r}: {e}')
  for name in ('image_size', 'channels', 'shuffle_buffer', 'prefetch'):
    need(d[name] > 0, f'config.dataset.{name}={d[name]} must be > 0.')
  need(bool(d.name), 'config.dataset.name is empty: name a tfds dataset (e.g. mnist).')
  need(d.crop >= 0, f'config.dataset.crop={d.crop} must be >= 0 (0: no crop).')
  need(1 <= d.pixel_max <= 255,
       f'config.dataset.pixel_max={d.pixel_max} must be in 1..255 (the stored value of a '
       'white pixel: 255 for most datasets, 1 for dSprites).')
  need(d.resize in RESIZE_METHODS,
       f'config.dataset.resize={d.resize!r} must be one of {RESIZE_METHODS}.')
  if method is not None:
    method.validate(config, need)

  # Code layout.
  need(c.noise_dim >= 0, f'config.codes.noise_dim={c.noise_dim} must be >= 0.')
  need(c.noise in ('normal', 'uniform'),
       f"config.codes.noise={c.noise!r} must be 'normal' or 'uniform'.")
  need(c.num_continuous >= 0, f'config.codes.num_continuous={c.num_continuous} must be >= 0.')
  need(isinstance(c.categorical, Sequence) and all(_is_int(k) and k >= 2 for k in c.categorical),
       f'config.codes.categorical={tuple(c.categorical)}: every Cat(K) needs an int K >= 2.')
  if positive_ints(tuple(c.categorical) or (1,)):
    width = c.noise_dim + sum(c.categorical) + c.num_continuous
    need(width == c.generator_input_dim,
         f'config.codes.generator_input_dim={c.generator_input_dim} but the code layout gives '
         f'noise_dim {c.noise_dim} + sum(categorical) {sum(c.categorical)} + num_continuous '
         f'{c.num_continuous} = {width}; fix the layout or the table width.')

  # Losses and optimiser.
  for name in ('lambda_disc', 'lambda_cont'):
    need(lc[name] >= 0, f'config.loss.{name}={lc[name]} must be >= 0.')
  for name in ('real_label', 'fake_label'):
    need(0.0 <= lc[name] <= 1.0, f'config.loss.{name}={lc[name]} must be in [0, 1].')
  need(0.0 <= lc.label_flip_prob < 0.5,
       f'config.loss.label_flip_prob={lc.label_flip_prob} must be in [0, 0.5).')
  need(o.learning_rate > 0, f'config.optimizer.learning_rate={o.learning_rate} must be > 0.')
  for name in ('b1', 'b2'):
    need(0.0 <= o[name] < 1.0, f'config.optimizer.{name}={o[name]} must be in [0, 1).')
  need(o.disc_learning_rate >= 0, f'config.optimizer.disc_learning_rate={o.disc_learning_rate} '
       'must be >= 0 (0: use optimizer.learning_rate).')
  need(o.disc_b1 < 1.0, f'config.optimizer.disc_b1={o.disc_b1} must be < 1 (< 0: use '
       'optimizer.b1).')

  if num_devices:
    # Several processes: each feeds an equal block of the global batch, split
    # again over its local devices.
    where = (f'the {num_devices} devices JAX sees' if num_processes == 1 else
             f'the {num_devices} devices of {num_processes} processes ({num_processes} x '
             f'{num_devices // num_processes} local devices)')
    for name in ('batch_size', 'eval_batch_size'):
      if config[name] > 0:
        need(config[name] % num_devices == 0,
             f'config.{name}={config[name]} does not divide over {where}: use a multiple of '
             f'{num_devices}.')
  return errors


def dataset_errors(config: ml_collections.ConfigDict) -> list[str]:
  """The dataset must be a tfds image dataset lgae can preprocess, with the splits named.

  Reads the dataset's features (from its code or metadata) and, if it is
  prepared, its split sizes; never its data, and never downloads. A dataset
  that is not prepared is left to `input_pipeline.check_available`, which
  downloads it or says how to prepare it.
  """
  data_dir = config.dataset.get('data_dir')
  if data_dir and os.path.exists(os.path.expanduser(data_dir)) and not os.path.isdir(
      os.path.expanduser(data_dir)):
    return [f'config.dataset.data_dir={data_dir!r} is a file; give the tfds data directory '
            '(the --data_dir of experiments.prepare_data).']
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  # Also registers lgae's own builders (rendered_chairs) with tfds.
  from lgae.data import input_pipeline  # pylint: disable=g-import-not-at-top
  d = config.dataset
  try:
    errors = input_pipeline.feature_errors(config)
  except tfds.core.registered.DatasetNotFoundError:
    builders = tfds.list_builders(with_community_datasets=False)
    close = difflib.get_close_matches(d.name, builders, n=1)
    hint = f' Did you mean {close[0]!r}?' if close else ''
    return [f'config.dataset.name={d.name!r} is not a tfds dataset known here.{hint}']
  if errors:
    return errors
  method = _method_or_none(config.model_name)
  if method is not None:
    method.validate_dataset(config, lambda ok, message: ok or errors.append(message))
  sizes = {}
  for field in ('train_split', 'eval_split'):
    try:
      sizes[field] = input_pipeline.num_examples(config, d[field], allow_download=False)
    except input_pipeline.DataNotFoundError:
      return errors
    except (ValueError, KeyError, AssertionError) as e:  # what tfds raises for bad splits.
      reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      errors.append(f'config.dataset.{field}={d[field]!r} is not a split of {d.name}: {reason}')
      continue
    if sizes[field] == 0:
      errors.append(f'config.dataset.{field}={d[field]!r} selects no examples of {d.name}.')
  eval_size = sizes.get('eval_split', 0)
  if 0 < eval_size < MIN_EVAL_EXAMPLES:
    errors.append(f'config.dataset.eval_split={d.eval_split!r} selects {eval_size} examples of '
                  f'{d.name}; the evaluation needs at least {MIN_EVAL_EXAMPLES} (its '
                  f'neighbour scores compare each point with its {MIN_EVAL_EXAMPLES - 1} '
                  'nearest others).')
  train_size = sizes.get('train_split', 0)
  if 0 < train_size < config.batch_size:
    errors.append(f'config.batch_size={config.batch_size} is larger than the {train_size} '
                  f'examples of {d.name} {d.train_split!r}: training uses full batches only.')
  return errors


def validate(config: ml_collections.ConfigDict, num_devices: int | None = None,
             check_dataset: bool = True, num_processes: int = 1) -> None:
  """Raises ConfigError listing every problem found; returns None if valid.

  Args:
    config: the config to check.
    num_devices: the device count batches are split over; None skips that check.
    num_processes: the processes those devices belong to (named in the message).
    check_dataset: also check the dataset name and, if the dataset is
      prepared, its splits and sizes (reads its metadata, never its data).
  """
  errors = schema_errors(config)
  if not errors:  # value checks assume the schema holds.
    errors = value_errors(config, num_devices, num_processes)
    if check_dataset and not errors:
      errors = dataset_errors(config)
  if errors:
    raise ConfigError('Invalid config:\n  ' + '\n  '.join(errors))


def loaded_config(holder, flag_values=None) -> ml_collections.ConfigDict:
  """The ConfigDict of a `config_flags.DEFINE_config_file` flag; ConfigError if it did not load.

  config_flags defers a config file's failure (missing file, syntax error, no
  `get_config`) to the first use of the config; this turns it into one line.
  """
  flag_values = flags.FLAGS if flag_values is None else flag_values
  try:
    config = holder.value
    config.keys()   # A config that failed to load raises only when first used.
    return config
  except (OSError, SyntaxError, AttributeError, ValueError) as e:
    cause = str(e).strip().splitlines()[-1].strip()
    given = flag_values[holder.name].serialize().split('=', 1)[-1]
    raise ConfigError(f'cannot load --{holder.name}={given}: {cause}. Give a config file such as '
                      'configs/mnist.py (a variant: configs/mnist.py:best).') from None


def parse_flags(argv: Sequence[str], flag_values=None) -> list[str]:
  """A flags parser for `app.run(main, flags_parser=parse_flags)`.

  Like absl's default parser (usage errors are one line and exit 1), and also
  for an override of a field the config does not have (`--config.batchsize`):
  config_flags lets a bare AttributeError escape for it, which absl prints as
  a 40-line traceback.

  Args:
    argv: the full command line, program name first.
    flag_values: the absl FlagValues to parse into (default: the global FLAGS).

  Returns:
    The arguments left after the flags, program name first.
  """
  flag_values = flags.FLAGS if flag_values is None else flag_values
  try:
    return flag_values(list(argv))
  except flags.Error as e:
    given = [a for a in argv[1:] if a.startswith('--config=')]
    if given and 'Flag --config must have a value other than None' in str(e):
      _usage_error(f'{given[-1]}: its get_config() returned None; it must return a ConfigDict '
                   '(e.g. configs/mnist.py).')
    _usage_error(_without_traceback(str(e)))
  except (SyntaxError, ImportError, NameError, TypeError) as e:
    # A config file that exists but does not run (config_flags executes it
    # while parsing): name the file and line, not the loader's traceback.
    where = f' ({e.filename}, line {e.lineno})' if isinstance(e, SyntaxError) else ''
    _usage_error(f'the --config file cannot be loaded{where}: {type(e).__name__}: '
                 f'{e.msg if isinstance(e, SyntaxError) else e}')
  except (AttributeError, KeyError) as e:
    if "has no attribute 'get_config'" in str(e):
      _usage_error('the --config file has no get_config(); give a config file such as '
                   'configs/mnist.py (a variant: configs/mnist.py:best).')
    message = _unknown_override_message(argv, e)
    if message is None:
      _usage_error(_raised_in_config_file(argv, e) or _reraise(e))
    _usage_error(message)
  except Exception as e:  # pylint: disable=broad-except
    # The config file's own code raised while config_flags ran it.
    _usage_error(_raised_in_config_file(argv, e) or _reraise(e))


def _reraise(error: Exception) -> NoReturn:
  raise error


def _raised_in_config_file(argv: Sequence[str], error: Exception) -> str | None:
  """'the --config file raised ...' if `error` came from the code of the --config file, else None."""
  given = [a.split('=', 1)[1].split(':', 1)[0] for a in argv[1:] if a.startswith('--config=')]
  if not given:
    return None
  path = os.path.abspath(given[-1])
  frames = [f for f in traceback.extract_tb(error.__traceback__)
            if os.path.abspath(f.filename) == path]
  if not frames:
    return None   # Not the config file's code: a bug of lgae's, keep the traceback.
  return (f'the --config file raised {type(error).__name__}: {error} ({frames[-1].filename}, '
          f'line {frames[-1].lineno}).')


def _without_traceback(message: str) -> str:
  """A flags error in one line: a config file's exception keeps its last line only.

  config_flags reports an exception raised while running the --config file
  (e.g. an unknown variant, `configs/mnist.py:bset`) with the whole traceback
  inside the flag error's text.
  """
  if 'Traceback (most recent call last)' not in message:
    return message
  head = message.split('Traceback (most recent call last)', 1)[0].strip().rstrip(':')
  last = [line.strip() for line in message.strip().splitlines() if line.strip()][-1]
  if "has no attribute 'get_config'" in last:
    last = ('the file has no get_config(); give a config file such as configs/mnist.py '
            '(a variant: configs/mnist.py:best)')
  return f'{head}: {last}'


def _unknown_override_message(argv: Sequence[str], error: Exception) -> str | None:
  """'--config.batchsize=32: the config has no field ...', or None if no flag matches."""
  # ml_collections raises AttributeError(KeyError("'batchsize'\nDid you mean \"batch_size\"
  # instead of \"batchsize\"?")); unwrap to that text (str() of a KeyError is its repr).
  while isinstance(error, BaseException) and error.args:
    error = error.args[0]
  error = str(error)
  key = re.search(r"'([^'\\]+)'", error)
  if not key:
    return None
  key = key.group(1)
  suggestion = re.search(r'Did you mean "([^"]+)"', error)
  for arg in argv[1:]:
    flag = arg.split('=', 1)[0]
    parts = flag.lstrip('-').split('.')
    if not flag.startswith('--') or len(parts) < 2 or key not in parts[1:]:
      continue
    message = f'{arg}: the {parts[0]} has no field {key!r}.'
    if suggestion:
      fixed = parts[:1] + [suggestion.group(1) if p == key else p for p in parts[1:]]
      message += f' Did you mean --{".".join(fixed)}?'
    return message
  return None


def _usage_error(message: str) -> NoReturn:
  sys.stderr.write(f'FATAL Flags parsing error: {message}\n'
                   'Pass --helpshort or --helpfull to see help on flags.\n')
  sys.exit(1)
