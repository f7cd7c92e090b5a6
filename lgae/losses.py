"""Losses of the LatentGAN Autoencoder, as pure functions of arrays.

All return scalars averaged over the batch. GAN losses take D's logits (the
paper's fc-o1-sig: the sigmoid is folded into a numerically stable BCE).
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def reconstruction_loss(images: jax.Array, reconstructions: jax.Array) -> jax.Array:
  """Eq. (1): mean squared error per pixel."""
  return jnp.mean(jnp.square(images - reconstructions))


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


def categorical_entropy(cat_logits: Sequence[jax.Array]) -> jax.Array:
  """Mean entropy of Q's categorical predictions, summed over Cat codes.

  Applied to Q(Enc(x)) and minimised by the encoder, it pushes real latents
  away from Q's decision boundaries, i.e. into the code regions G carves out.
  Not in the paper; see `config.loss.encoder_entropy_weight`.
  """
  total = jnp.zeros((), jnp.float32)
  for logits in cat_logits:
    logp = jax.nn.log_softmax(logits, axis=-1)
    total += jnp.mean(-jnp.sum(jnp.exp(logp) * logp, axis=-1))
  return total


def categorical_mi_loss(cat_logits: Sequence[jax.Array], categories: jax.Array) -> jax.Array:
  """-L_1 for the Cat codes: cross-entropy of Q's heads, summed over codes.

  Args:
    cat_logits: one [N, K_i] logit array per Cat code.
    categories: [N, num_codes] int category indices.
  """
  total = jnp.zeros((), jnp.float32)
  for i, logits in enumerate(cat_logits):
    total += jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, categories[:, i]))
  return total


def continuous_mi_loss(predicted_mean: jax.Array, codes: jax.Array) -> jax.Array:
  """-L_1 for the U codes: Gaussian NLL with unit variance, summed over codes.

  Table 2's Q head (fc-o2 for two codes) predicts only the mean, so the
  variance is fixed to 1: NLL = 0.5 (c - mu)^2 + 0.5 log(2 pi) per code.
  """
  if codes.shape[-1] == 0:
    return jnp.zeros((), jnp.float32)
  nll = 0.5 * jnp.square(codes - predicted_mean) + _HALF_LOG_2PI
  return jnp.mean(jnp.sum(nll, axis=-1))


def noisy_labels(key: jax.Array, shape: Sequence[int], value: float, other: float,
                 flip_prob: float) -> jax.Array:
  """Targets equal to `value`, each swapped for `other` with probability flip_prob."""
  targets = jnp.full(shape, value, jnp.float32)
  if flip_prob <= 0.0:
    return targets
  return jnp.where(jax.random.bernoulli(key, flip_prob, shape), other, targets)


def _first_head_probs(cat_logits: Sequence[jax.Array]) -> list[jax.Array]:
  return [jax.nn.softmax(logits, axis=-1) for logits in cat_logits]


def neighbour_consistency_loss(cat_logits: Sequence[jax.Array],
                               neighbour_logits: Sequence[jax.Array]) -> jax.Array:
  """-log <Q(z), Q(z_nb)>: Q's categorical predictions agree on latent neighbours.

  SCAN's consistency term (Van Gansbeke et al. 2020), summed over Cat codes:
  `z_nb` is one of z's nearest neighbours among the encoder's latents, so the
  loss asks Q's classifier to be constant along the latent's neighbourhood
  graph, the structure a neighbourhood method (UMAP, kNN) sees and k-means
  does not. Not in the paper; see `config.loss.neighbour_weight`.
  """
  total = jnp.zeros((), jnp.float32)
  for logits, nb_logits in zip(cat_logits, neighbour_logits):
    logp = jax.nn.log_softmax(logits, axis=-1)
    nb_logp = jax.nn.log_softmax(nb_logits, axis=-1)
    # log sum_k p_k q_k, computed in log space so confident pairs stay finite.
    total -= jnp.mean(jax.nn.logsumexp(logp + nb_logp, axis=-1))
  return total


def marginal_entropy(cat_logits: Sequence[jax.Array]) -> jax.Array:
  """H(mean_x Q(c | z)), summed over Cat codes: high when every category is used.

  Maximised next to `neighbour_consistency_loss`, it keeps the consistency term
  from putting every latent into one category (the trivial agreement).
  """
  total = jnp.zeros((), jnp.float32)
  for probs in _first_head_probs(cat_logits):
    marginal = jnp.mean(probs, axis=0)
    total -= jnp.sum(marginal * jnp.log(jnp.clip(marginal, 1e-12)))
  return total


def discriminator_targets(k_real: jax.Array, k_fake: jax.Array, batch_size: int,
                          lc) -> tuple[jax.Array, jax.Array]:
  """D's (real, fake) targets from `config.loss`: real_label / fake_label, each
  swapped for the other with probability label_flip_prob (the paper's noisy labels)."""
  real = noisy_labels(k_real, (batch_size,), lc.real_label, lc.fake_label, lc.label_flip_prob)
  fake = noisy_labels(k_fake, (batch_size,), lc.fake_label, lc.real_label, lc.label_flip_prob)
  return real, fake


def weighted_mi_losses(out, codes, lc) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(mi_cat, mi_cont, lambda_disc * mi_cat + lambda_cont * mi_cont) of Q's heads
  `out` ({'cat_logits', 'cont_mean'}) against the codes that made the fakes."""
  mi_cat = categorical_mi_loss(out['cat_logits'], codes.categorical)
  mi_cont = continuous_mi_loss(out['cont_mean'], codes.continuous)
  return mi_cat, mi_cont, lc.lambda_disc * mi_cat + lc.lambda_cont * mi_cont
