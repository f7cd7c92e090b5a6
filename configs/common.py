"""Helpers shared by the configs: a method's defaults, MNIST's padding, the smoke schedule.

Each `configs/<method>_<dataset>.py` starts from `get_base_config(model_name)`
(the method's schema at its defaults, `lgae.core.config`) and fills in a
paper's tables for that dataset. Every field is documented where it is
defined (`lgae/core/config.py` and the method's `config_fields`);
`lgae.core.config_validation` checks them all before anything is compiled.
"""

import ml_collections

from lgae.core import config as config_lib


def get_base_config(model_name: str = 'latentgan_ae') -> ml_collections.ConfigDict:
  """Every field of a `model_name` config (`lgae.methods.NAMES`), at its default."""
  return config_lib.default_config(model_name)


def for_method(config: ml_collections.ConfigDict, model_name: str) -> ml_collections.ConfigDict:
  """`config`'s shared fields (dataset, codes, optimiser, run length ...) for another method.

  The result has `model_name`'s own fields (`config.model` and any others) at
  their defaults; the fields every method shares keep `config`'s values.
  """
  shared = config_lib.base_config()
  new = get_base_config(model_name)
  with new.unlocked():
    for name, value in config.items():
      if name in ('model_name', 'model') or name not in shared:
        continue
      if isinstance(value, ml_collections.ConfigDict):
        for field in shared[name]:
          new[name][field] = value[field]
      else:
        new[name] = value
  return new


def check_variant(variant: str, variants: tuple[str, ...], what: str, note: str = '') -> None:
  """Raises ValueError naming the variants of `what` if `variant` is not one of them.

  Called first thing in `get_config`, so a typo (`configs/mnist.py:bset`) is
  refused before anything is built; `note` may add e.g. an alias.
  """
  if variant not in variants:
    names = ', '.join(repr(v) for v in variants[:-1]) + f' or {variants[-1]!r}'
    raise ValueError(f'Unknown {what} config variant {variant!r}; use {names}{note}.')


def use_padded_mnist(config: ml_collections.ConfigDict) -> None:
  """MNIST as every MNIST config reads it: 28x28 digits zero-padded to 1x32x32."""
  config.dataset.name = 'mnist'
  config.dataset.image_size = 32     # 28x28 digits zero-padded (background) to 32x32.
  config.dataset.resize = 'pad'
  config.dataset.channels = 1


def shrink_schedule_for_smoke(config: ml_collections.ConfigDict) -> None:
  """The schedule of every ':smoke' variant: 6 steps of batch 16, seconds long.

  Each config's `apply_smoke` shrinks its own networks and then calls this.
  """
  config.batch_size = 16
  config.eval_batch_size = 32
  config.num_epochs = 1
  config.num_train_steps = 6
  config.log_every_steps = 2
  config.checkpoint_every_steps = 3
  config.eval_every_steps = 3
  config.eval_generation = False   # no classifier training on tiny data.
  config.dataset.shuffle_buffer = 256
  config.dataset.prefetch = 1
