"""InfoGAN's mutual-information objectives: Q's code heads against the codes that made the fakes.

All return scalars averaged over the batch (Chen et al. 2016, Eq. 5 as a
loss: minus the variational lower bound, up to the codes' constant entropy).
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


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

def weighted_mi_losses(out, codes, lc) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(mi_cat, mi_cont, lambda_disc * mi_cat + lambda_cont * mi_cont) of Q's heads
  `out` ({'cat_logits', 'cont_mean'}) against the codes that made the fakes."""
  mi_cat = categorical_mi_loss(out['cat_logits'], codes.categorical)
  mi_cont = continuous_mi_loss(out['cont_mean'], codes.continuous)
  return mi_cat, mi_cont, lc.lambda_disc * mi_cat + lc.lambda_cont * mi_cont
