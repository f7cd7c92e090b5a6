"""What every method's train state is built from, and how a state is created or restored.

A method's state is one pytree (`lgae.core.method`) whose root has `step` and
`rng` (`StepState`): jit, shard, donate and checkpoint it whole. Each network
in it is an `AutoencoderState` (parameters, Adam state, BatchNorm running
statistics, {} for a network without BatchNorm); `network_state`, `apply` and
`train_forward` make and run one, `make_optimizer` gives its Adam.
`create_state` and `abstract_state` build the state of `config.model_name`'s
method.
"""

import functools
from typing import Any

import flax.linen as nn
import flax.struct

import jax
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


class StepState(flax.struct.PyTreeNode):
  """The root of a method's train state; each method's state class adds its networks.

  Attributes:
    step: int32 scalar, the number of updates done.
    rng: the base PRNG key (raw uint32[2]); step `s` draws from fold_in(rng, s).
  """

  step: jax.Array
  rng: jax.Array


def network_state(model: nn.Module, variables: Any, config: ml_collections.ConfigDict,
           network: str) -> AutoencoderState:
  """The state of `model` from its initial `variables`, with `network`'s Adam (`make_optimizer`)."""
  return AutoencoderState.create(
      apply_fn=model.apply, params=variables['params'],
      tx=make_optimizer(config, network),
      batch_stats=variables.get('batch_stats', {}))


def variables(net: AutoencoderState, params: Any = None,
              batch_stats: Any = None) -> dict[str, Any]:
  """{'params', 'batch_stats'} of `net`, either replaced where given."""
  return {'params': net.params if params is None else params,
          'batch_stats': net.batch_stats if batch_stats is None else batch_stats}


def apply(net: AutoencoderState, *inputs, **kwargs) -> Any:
  """`net`'s function at its current parameters and running statistics.

  Inference mode is the caller's `train=False`, where the network takes one.
  """
  return net.apply_fn(variables(net), *inputs, **kwargs)


def train_forward(net: AutoencoderState, params: Any, *inputs,
                  batch_stats: Any = None, **kwargs) -> tuple[Any, Any]:
  """Train-mode forward (batch statistics) at `params`: (output, updated running statistics).

  The running statistics are updated from `batch_stats` (default: `net`'s);
  a network without BatchNorm returns them unchanged.
  """
  given = variables(net, params, batch_stats)
  out, updates = net.apply_fn(given, *inputs, train=True, mutable=['batch_stats'], **kwargs)
  return out, updates.get('batch_stats', given['batch_stats'])
