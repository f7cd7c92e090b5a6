"""GAN objectives on D's logits: D's and G's losses, noisy labels, an encoder's adversarial term.

All return scalars averaged over the batch. D ends in a logit (the paper's fc-o1-sig:
the sigmoid is folded into a numerically stable BCE).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax


def noisy_labels(key: jax.Array, shape: Sequence[int], value: float, other: float,
                 flip_prob: float) -> jax.Array:
  """Targets equal to `value`, each swapped for `other` with probability flip_prob."""
  targets = jnp.full(shape, value, jnp.float32)
  if flip_prob <= 0.0:
    return targets
  return jnp.where(jax.random.bernoulli(key, flip_prob, shape), other, targets)

def discriminator_targets(k_real: jax.Array, k_fake: jax.Array, batch_size: int,
                          lc) -> tuple[jax.Array, jax.Array]:
  """D's (real, fake) targets from `config.loss`: real_label / fake_label, each
  swapped for the other with probability label_flip_prob (the paper's noisy labels)."""
  real = noisy_labels(k_real, (batch_size,), lc.real_label, lc.fake_label, lc.label_flip_prob)
  fake = noisy_labels(k_fake, (batch_size,), lc.fake_label, lc.real_label, lc.label_flip_prob)
  return real, fake

def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array,
                       real_targets: jax.Array, fake_targets: jax.Array) -> jax.Array:
  """D's side of Eq. (2): BCE of real latents vs targets, plus fakes vs targets.

  Targets are 1/0 in the plain GAN; label smoothing or flipping (the paper's
  "noisy labels") is done by the caller through the targets.
  """
  return (jnp.mean(optax.sigmoid_binary_cross_entropy(real_logits, real_targets)) +
          jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits, fake_targets)))

def generator_loss(fake_logits: jax.Array) -> jax.Array:
  """Non-saturating G loss: -log D(G(p, c))."""
  return jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits)))

def encoder_adversarial_loss(real_logits: jax.Array) -> jax.Array:
  """-log(1 - D(Enc(x))): the encoder, like G, plays against D, from the other side.

  Not in the paper (its encoder sees only Eq. 1); an AAE-style option that
  pulls Enc(x) towards G's code-structured distribution.
  """
  return jnp.mean(optax.sigmoid_binary_cross_entropy(real_logits, jnp.zeros_like(real_logits)))
