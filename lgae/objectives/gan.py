"""GAN objectives on D's logits: D's and G's losses, noisy labels, an encoder's adversarial term.

All return scalars averaged over the batch. D ends in a logit (the paper's fc-o1-sig:
the sigmoid is folded into a numerically stable BCE). `discriminator_update`
and `batchnorm_discriminator_update` are whole steps of an adversary's train
state (without and with BatchNorm), `generator_grads` G's side through one.
"""

from collections.abc import Callable, Sequence
from typing import Any

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

def discriminator_update(disc, real: jax.Array, fake: jax.Array, real_targets: jax.Array,
                         fake_targets: jax.Array):
  """One BCE step (`discriminator_loss`) of an adversary without batch-dependent layers.

  `disc` is a flax TrainState whose network maps [N, ...] to logits [N];
  real and fake go through one forward on [real; fake] (nothing in the network
  depends on the batch, so that is the same as two).

  Returns (new state, loss, mean D(real), mean D(fake)).
  """
  n = real.shape[0]

  def loss_fn(params):
    logits = disc.apply_fn({'params': params}, jnp.concatenate([real, fake], axis=0))
    loss = discriminator_loss(logits[:n], logits[n:], real_targets, fake_targets)
    return loss, (jnp.mean(jax.nn.sigmoid(logits[:n])), jnp.mean(jax.nn.sigmoid(logits[n:])))

  (loss, (real_prob, fake_prob)), grads = jax.value_and_grad(loss_fn, has_aux=True)(disc.params)
  return disc.apply_gradients(grads=grads), loss, real_prob, fake_prob


def batchnorm_discriminator_update(disc, real: jax.Array, fake: jax.Array,
                                   real_targets: jax.Array, fake_targets: jax.Array,
                                   fake_loss: Callable[[Any], tuple[jax.Array, dict]],
                                   tag: str = ''):
  """One step of a discriminator with BatchNorm: `discriminator_loss` + fake_loss(D's fake outputs).

  `disc` is a TrainState with `batch_stats` (`lgae.core.state.AutoencoderState`)
  whose network maps images to a dict with 'logit' [N] (InfoGAN's D/Q).
  Real and fake go through two train-mode forwards: BatchNorm must not see a
  mixed batch, or D could tell real from fake by the batch statistics alone.
  The running statistics follow the real forward, then the fake one.
  `fake_loss` returns (a term added to D's loss, its metrics), e.g. Q's
  weighted MI loss on the fakes.

  Returns (new state, metrics): f'd{tag}_loss', f'd{tag}_real_prob',
  f'd{tag}_fake_prob' and fake_loss's.
  """

  def loss_fn(params):
    real_out, updates = disc.apply_fn({'params': params, 'batch_stats': disc.batch_stats}, real,
                                      train=True, mutable=['batch_stats'])
    fake_out, updates = disc.apply_fn({'params': params, 'batch_stats': updates['batch_stats']},
                                      fake, train=True, mutable=['batch_stats'])
    d_loss = discriminator_loss(real_out['logit'], fake_out['logit'], real_targets, fake_targets)
    extra, metrics = fake_loss(fake_out)
    metrics = {f'd{tag}_loss': d_loss, **metrics,
               f'd{tag}_real_prob': jnp.mean(jax.nn.sigmoid(real_out['logit'])),
               f'd{tag}_fake_prob': jnp.mean(jax.nn.sigmoid(fake_out['logit']))}
    return d_loss + extra, (updates['batch_stats'], metrics)

  (_, (stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(disc.params)
  return disc.apply_gradients(grads=grads, batch_stats=stats), metrics


def generator_grads(disc, fake: jax.Array, fake_loss: Callable[[Any], jax.Array]
                    ) -> tuple[jax.Array, jax.Array]:
  """(G's `generator_loss`, d/d fake of it + fake_loss(D's outputs)), through `disc`.

  `disc` (as in `batchnorm_discriminator_update`, usually just updated) runs
  in train mode with its running statistics left alone (it is G's step, not
  D's); the gradient is with respect to the images `fake`, for the caller to
  pull back through G's VJP.
  """

  def loss_fn(images):
    out, _ = disc.apply_fn({'params': disc.params, 'batch_stats': disc.batch_stats}, images,
                           train=True, mutable=['batch_stats'])
    g_loss = generator_loss(out['logit'])
    return g_loss + fake_loss(out), g_loss

  (_, g_loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(fake)
  return g_loss, grads
