"""Clustering objectives on a classifier's Cat heads (SCAN, Van Gansbeke et al. 2020).

Neighbour consistency and the marginal entropy that keeps every category in use.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp


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
