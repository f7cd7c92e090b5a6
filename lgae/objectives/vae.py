"""Objectives of VAE-like models: a decoder's likelihood, Gaussian and categorical KL terms.

Shared by the beta-VAE, the WAE, the latent-statistics VAE and InfoVAEGAN's
L_VAE. Per-image terms are summed over pixels or coordinates and averaged
over the batch where a function says "averaged"; the KL terms return one
value per row, for the caller to weigh and average.
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

# Values of a `config.model.reconstruction` that names `reconstruction_loss`'s kind.
RECONSTRUCTIONS = ('bernoulli', 'mse')

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def need_reconstruction(kind: str, need: Callable[[bool, str], None]) -> None:
  """The validation of `config.model.reconstruction` = `kind`: need(ok, message)."""
  need(kind in RECONSTRUCTIONS,
       f'config.model.reconstruction={kind!r} must be one of {RECONSTRUCTIONS}.')


def reconstruction_loss(images: jax.Array, recon: jax.Array, pre_tanh: jax.Array,
                        kind: str) -> jax.Array:
  """-log p(x | z) up to a constant: summed over pixels, averaged over the batch.

  'bernoulli': -log Bernoulli(x01 | p), x01 = (x + 1) / 2 in [0, 1] and
  p = (Dec(z) + 1) / 2. A decoder ending in tanh(a) has (tanh(a) + 1) / 2 =
  sigmoid(2a), so the Bernoulli logit is exactly 2a: a sigmoid cross-entropy
  on logits 2a, read from the decoder's last pre-tanh output (no atanh of a
  saturated tanh, which would give an infinite loss or a zero gradient on
  confidently wrong pixels). 'mse': sum_pixels (x - Dec(z))^2 (a Gaussian
  decoder of fixed variance 1/2, up to a constant), for non-binary images.

  Args:
    images: [N, H, W, C] targets in [-1, 1].
    recon: [N, H, W, C] the decoder's output tanh(pre_tanh).
    pre_tanh: [N, H, W, C] the decoder's last output before tanh.
    kind: 'bernoulli' or 'mse' (`RECONSTRUCTIONS`).
  """
  if kind == 'bernoulli':
    per_pixel = optax.sigmoid_binary_cross_entropy(2.0 * pre_tanh, (images + 1.0) / 2.0)
  elif kind == 'mse':
    per_pixel = jnp.square(images - recon)
  else:
    raise ValueError(f'Unknown reconstruction {kind!r}; use one of {RECONSTRUCTIONS}.')
  return jnp.mean(jnp.sum(per_pixel, axis=(1, 2, 3)))


def gaussian_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """KL(N(mean, diag(exp(log_var))) || N(0, I)) per row ([N, D] -> [N]).

  The closed form 0.5 * sum_d (exp(log_var) + mean^2 - 1 - log_var).
  """
  return 0.5 * jnp.sum(jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var, axis=-1)


def categorical_kl_uniform(logits: jax.Array) -> jax.Array:
  """KL(softmax(logits) || Cat(1/K)) per row ([N, K] -> [N]): sum_k q_k log q_k + log K."""
  log_q = jax.nn.log_softmax(logits, axis=-1)
  return jnp.sum(jnp.exp(log_q) * log_q, axis=-1) + jnp.log(logits.shape[-1])


def gaussian_nll(values: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """-log N(values; mean, diag(exp(log_var))): summed over dims, averaged over the batch.

  An encoder's own variance, where InfoGAN's Q (`info.continuous_mi_loss`)
  fixes it to 1 (InfoVAEGAN's continuous -log p_phi(c | x), Eq. 30).
  """
  if values.shape[-1] == 0:
    return jnp.zeros((), jnp.float32)
  nll = (_HALF_LOG_2PI + 0.5 * log_var
         + 0.5 * jnp.square(values - mean) * jnp.exp(-log_var))
  return jnp.mean(jnp.sum(nll, axis=-1))
