"""Train states: the LatentGAN-AE's three, bundled in one pytree, and what every method shares.

`LatentGANState` holds the autoencoder (with BatchNorm statistics), the
generator and the discriminator/Q states, the global step and the RNG key from
which every random draw of a step is derived (`fold_in(rng, step)`). It is a
plain pytree: jit, shard, donate and checkpoint it whole. `create_state` and
`abstract_state` build the state of any method (`lgae.methods`), by
`config.model_name`; `AutoencoderState` and `make_optimizer` serve them all.
"""

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from lgae import latent, parallel
from lgae import models as models_lib


class AutoencoderState(train_state.TrainState):
  """Encoder+decoder parameters, optimiser state and BatchNorm statistics."""

  batch_stats: Any = None


class LatentGANState(flax.struct.PyTreeNode):
  """Everything that changes during training.

  Attributes:
    step: int32 scalar, the number of combined updates done.
    rng: the base PRNG key (raw uint32[2]); step `s` draws from fold_in(rng, s).
    ae: autoencoder state.
    gen: generator state.
    disc: discriminator/Q state (D's trunk and all heads).
  """

  step: jax.Array
  rng: jax.Array
  ae: AutoencoderState
  gen: train_state.TrainState
  disc: train_state.TrainState


def make_optimizer(config: ml_collections.ConfigDict,
                   network: str = 'shared') -> optax.GradientTransformation:
  """Adam(lr, b1, b2) for one network: 'autoencoder', 'generator' or 'discriminator'.

  The paper uses the same optimiser for all three; `optimizer.disc_learning_rate`
  and `optimizer.disc_b1` (when > 0 / >= 0) give D/Q its own, for the
  neighbour-consistency term that trains Q's head (README, research log).
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


def init_state(key: jax.Array, config: ml_collections.ConfigDict,
               models: tuple[models_lib.Autoencoder, models_lib.Generator,
                             models_lib.DiscriminatorQ]) -> LatentGANState:
  """Initialises all three networks. Pure: wrap in jit/eval_shape to place it."""
  autoencoder, generator, discriminator = models
  layout = latent.CodeLayout.from_config(config)
  k_ae, k_gen, k_disc, k_rng = jax.random.split(key, 4)
  size, channels = config.dataset.image_size, config.dataset.channels
  ae_vars = autoencoder.init(k_ae, jnp.zeros((1, size, size, channels)), train=False)
  gen_vars = generator.init(k_gen, jnp.zeros((1, layout.input_dim)))
  disc_vars = discriminator.init(k_disc, jnp.zeros((1, config.model.latent_dim)))
  tx = make_optimizer(config)
  return LatentGANState(
      step=jnp.zeros((), jnp.int32),
      rng=k_rng,
      ae=AutoencoderState.create(apply_fn=autoencoder.apply, params=ae_vars['params'], tx=tx,
                                 batch_stats=ae_vars['batch_stats']),
      gen=train_state.TrainState.create(apply_fn=generator.apply, params=gen_vars['params'],
                                        tx=tx),
      disc=train_state.TrainState.create(apply_fn=discriminator.apply,
                                         params=disc_vars['params'],
                                         tx=make_optimizer(config, 'discriminator')),
  )


def _method_init(config: ml_collections.ConfigDict, models):
  """`init_state` of `config.model_name`'s method, with its models bound."""
  # Imported here: the methods import this module for the shared pieces above.
  from lgae import methods  # pylint: disable=g-import-not-at-top
  method = methods.for_config(config)
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
