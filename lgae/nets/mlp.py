"""A relu MLP: the latent GAN's G and D/Q trunks, the AAE's nets and other small heads."""

from collections.abc import Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
  """Dense+relu hidden layers, then an optional linear output layer."""

  hidden: Sequence[int]
  out_dim: int | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, h in enumerate(self.hidden):
      x = nn.relu(nn.Dense(h, name=f'fc{i}')(x))
    if self.out_dim is not None:
      x = nn.Dense(self.out_dim, name='fc_out')(x)
    return x
