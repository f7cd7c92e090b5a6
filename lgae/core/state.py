"""What every method's train state is built from, and how a state is created or restored.

A method's state is one pytree (`lgae.core.method`): jit, shard, donate and
checkpoint it whole. `create_state` and `abstract_state` build the state of
`config.model_name`'s method; `AutoencoderState` (a network with BatchNorm
statistics) and `make_optimizer` serve them all.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from lgae.core import method as method_lib
from lgae.core import parallel


class AutoencoderState(train_state.TrainState):
  """A network's parameters, optimiser state and BatchNorm statistics (None without BatchNorm)."""

  batch_stats: Any = None


def make_optimizer(config: ml_collections.ConfigDict,
                   network: str = 'shared') -> optax.GradientTransformation:
  """Adam(lr, b1, b2) for one network ('autoencoder', 'generator', 'discriminator', ...).

  `optimizer.disc_learning_rate` and `optimizer.disc_b1` (when > 0 / >= 0)
  give the 'discriminator' network its own (InfoGAN's reference code trains
  D/Q at another rate than G); by default every network shares one.
  """
  o = config.optimizer
  learning_rate, b1 = o.learning_rate, o.b1
  if network == 'discriminator':
    # .get: configs saved before these fields existed restore unchanged.
    if o.get('disc_learning_rate', 0.0) > 0:
      learning_rate = o.disc_learning_rate
    if o.get('disc_b1', -1.0) >= 0:
      b1 = o.disc_b1
  return optax.adam(learning_rate, b1=b1, b2=o.b2)


def _method_init(config: ml_collections.ConfigDict, models):
  """`init_state` of `config.model_name`'s method, with its models bound."""
  method = method_lib.for_config(config)
  models = models or method.build_models(config)
  return functools.partial(method.init_state, config=config, models=models)


def create_state(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, models=None):
  """A fresh state of `config.model_name`'s method from `config.seed`, on the mesh, replicated."""
  init = _method_init(config, models)
  return jax.jit(init, out_shardings=parallel.replicated(mesh))(jax.random.PRNGKey(config.seed))


def abstract_state(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, models=None):
  """Shapes, dtypes and (replicated) shardings of the state, allocating nothing.

  The restore target for checkpoints: it places a restored state on `mesh`
  whatever the device count it was saved from.
  """
  shapes = jax.eval_shape(_method_init(config, models), jax.random.PRNGKey(config.seed))
  return parallel.with_sharding(shapes, parallel.replicated(mesh))


def count_params(params: Any) -> int:
  """Number of scalars in a parameter pytree."""
  return sum(x.size for x in jax.tree.leaves(params))
