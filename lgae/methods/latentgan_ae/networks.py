"""The LatentGAN-AE's networks (Table 2): the conv autoencoder, G and D/Q, built from a config.

Enc and Dec are the shared conv stacks (`lgae.nets.conv`); G is an MLP from
[noise, one-hot Cat codes, U codes] to a latent; D and Q share one MLP trunk
on the latent, with a real/fake logit head and Q's code heads.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from lgae.nets import conv
from lgae.nets.conv import Autoencoder
from lgae.nets.mlp import MLP


class Generator(nn.Module):
  """G: [noise, one-hot Cat codes, U codes] -> a fake latent (linear output)."""

  hidden: Sequence[int]
  latent_dim: int

  @nn.compact
  def __call__(self, g_input: jax.Array) -> jax.Array:
    return MLP(self.hidden, self.latent_dim, name='mlp')(g_input)


class DiscriminatorQ(nn.Module):
  """D and Q: one relu trunk, a real/fake logit head and Q's code heads.

  Q's heads sit on D's trunk (the paper's "Q shares parameters with D"), so the
  mutual-information loss trains the trunk too.
  """

  hidden: Sequence[int]
  categorical: Sequence[int]
  num_continuous: int

  @nn.compact
  def __call__(self, z: jax.Array) -> dict[str, jax.Array]:
    """Returns {'logit': [N], 'cont_mean': [N, n_cont], 'cat_logits': tuple of [N, K]}."""
    h = MLP(self.hidden, name='trunk')(z)
    out = {'logit': nn.Dense(1, name='d_head')(h)[:, 0]}
    out['cont_mean'] = (nn.Dense(self.num_continuous, name='q_cont')(h)
                        if self.num_continuous else jnp.zeros((z.shape[0], 0), z.dtype))
    out['cat_logits'] = tuple(nn.Dense(k, name=f'q_cat{i}')(h)
                              for i, k in enumerate(self.categorical))
    return out


def build_models(config: ml_collections.ConfigDict) -> tuple[Autoencoder, Generator, DiscriminatorQ]:
  """Builds (autoencoder, generator, discriminator/Q) from a config."""
  m = config.model
  encoder, decoder = conv.build_encoder_decoder(config)
  autoencoder = Autoencoder(encoder=encoder, decoder=decoder)
  generator = Generator(hidden=tuple(m.generator_hidden), latent_dim=m.latent_dim)
  discriminator = DiscriminatorQ(hidden=tuple(m.discriminator_hidden),
                                 categorical=tuple(config.codes.categorical),
                                 num_continuous=config.codes.num_continuous)
  return autoencoder, generator, discriminator
