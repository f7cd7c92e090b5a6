"""The LatentGAN-AE's train state: the autoencoder, G and D/Q, bundled in one pytree.

`LatentGANState` holds the autoencoder (with BatchNorm statistics), the
generator and the discriminator/Q states, the global step and the RNG key from
which every random draw of a step is derived (`fold_in(rng, step)`).
"""

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
from flax.training import train_state

from lgae.core import latent
from lgae.core import state as state_lib
from lgae.core.state import AutoencoderState
from lgae.methods.latentgan_ae import networks


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


def init_state(key: jax.Array, config: ml_collections.ConfigDict,
               models: tuple[networks.Autoencoder, networks.Generator,
                             networks.DiscriminatorQ]) -> LatentGANState:
  """Initialises all three networks. Pure: wrap in jit/eval_shape to place it."""
  autoencoder, generator, discriminator = models
  layout = latent.CodeLayout.from_config(config)
  k_ae, k_gen, k_disc, k_rng = jax.random.split(key, 4)
  size, channels = config.dataset.image_size, config.dataset.channels
  ae_vars = autoencoder.init(k_ae, jnp.zeros((1, size, size, channels)), train=False)
  gen_vars = generator.init(k_gen, jnp.zeros((1, layout.input_dim)))
  disc_vars = discriminator.init(k_disc, jnp.zeros((1, config.model.latent_dim)))
  tx = state_lib.make_optimizer(config)
  return LatentGANState(
      step=jnp.zeros((), jnp.int32),
      rng=k_rng,
      ae=AutoencoderState.create(apply_fn=autoencoder.apply, params=ae_vars['params'], tx=tx,
                                 batch_stats=ae_vars['batch_stats']),
      gen=train_state.TrainState.create(apply_fn=generator.apply, params=gen_vars['params'],
                                        tx=tx),
      disc=train_state.TrainState.create(apply_fn=discriminator.apply,
                                         params=disc_vars['params'],
                                         tx=state_lib.make_optimizer(config, 'discriminator')),
  )
