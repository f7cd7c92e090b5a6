"""Reconstruction objectives of autoencoders."""

import jax
import jax.numpy as jnp


def reconstruction_loss(images: jax.Array, reconstructions: jax.Array) -> jax.Array:
  """Eq. (1): mean squared error per pixel."""
  return jnp.mean(jnp.square(images - reconstructions))
