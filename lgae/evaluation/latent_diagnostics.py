"""Score family: why a run clusters as it does, measured in the representation space.

On when `config.eval_latent_diagnostics` (the default; configs saved before
the option existed restore without it and skip these scores).

  * `latent_frechet_distance`, `latent_precision`, `latent_recall` (methods
    with a generator in that space, `Method.has_latent_generator`: the
    LatentGAN-AE's G): G(p, c) against Enc(x) of the eval split (Frechet
    distance of fitted Gaussians; k-NN precision/recall on up to 5000 points
    each). Q is trained on G's latents and applied to the encoder's: where
    they differ, Q's classification of real latents is an extrapolation.
  * `latent_kmeans_error`, `latent_gmm_error` (labelled datasets): the
    clustering ceiling of the latent itself, fitted on Enc(x_train).
  * `latent_neighbour_agreement` (labelled datasets): the fraction of each
    test latent's 10 nearest test latents with its label, what a
    neighbour-consistency term (`config.loss.neighbour_weight`) can exploit.

The generated latents use the very codes of the generated eval images
(`generation.generation_codes`).
"""

import functools

import jax
import ml_collections
import numpy as np

from lgae.core import latent
from lgae.core import method as method_lib
from lgae.core import parallel
from lgae.evaluation import generation, metrics
from lgae.evaluation import outputs as outputs_lib

KEYS = ('latent_frechet_distance', 'latent_precision', 'latent_recall', 'latent_kmeans_error',
        'latent_gmm_error', 'latent_neighbour_agreement')

# Points per set for the latent k-NN precision/recall (cost grows as its square).
_PRECISION_RECALL_POINTS = 5000

State = method_lib.State


@functools.lru_cache(maxsize=8)
def _jitted_generate_latents(mesh: jax.sharding.Mesh, layout: latent.CodeLayout, seed: int):
  def generate(state, indices):
    codes = generation.generation_codes(indices, layout, seed)
    return method_lib.for_state(state).generated_latents(state, codes, layout)
  return jax.jit(generate, in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
                 out_shardings=parallel.replicated(mesh))


def generated_latents(state: State, config: ml_collections.ConfigDict,
                      mesh: jax.sharding.Mesh, num: int) -> np.ndarray:
  """G(p, c) for the same `num` codes the generated eval images use: [num, latent]."""
  layout = latent.CodeLayout.from_config(config)
  batch_size = int(config.eval_batch_size)
  fn = _jitted_generate_latents(mesh, layout, int(config.seed))
  parts = []
  for start in range(0, num, batch_size):
    indices = np.arange(start, start + batch_size, dtype=np.int32)
    z = parallel.to_host(fn(state, outputs_lib.shard_indices(indices, mesh)))
    parts.append(z[:min(batch_size, num - start)])
  return np.concatenate(parts)


def latent_diagnostics(state: State, config: ml_collections.ConfigDict,
                       mesh: jax.sharding.Mesh, test_z: np.ndarray,
                       test_labels: np.ndarray | None) -> dict[str, float]:
  """The family's scores from Enc(x_test) `test_z` (see the module docstring).

  `test_labels` None (an unlabelled dataset) skips the clustering ceilings and
  the neighbour agreement.
  """
  scores = {}
  if method_lib.for_state(state).has_latent_generator:
    fake_z = generated_latents(state, config, mesh, len(test_z))
    scores['latent_frechet_distance'] = metrics.frechet_distance(test_z, fake_z)
    rng = np.random.default_rng(int(config.seed))
    pick = lambda x: x[rng.permutation(len(x))[:_PRECISION_RECALL_POINTS]]
    pr = metrics.knn_precision_recall(pick(test_z), pick(fake_z))
    scores.update(latent_precision=pr['precision'], latent_recall=pr['recall'])
  if test_labels is not None and config.codes.categorical:
    train_z = outputs_lib.collect(state, config, mesh, split=config.dataset.train_split)['z']
    ceiling = metrics.latent_clustering_ceiling(
        train_z, test_z, test_labels, int(config.codes.categorical[0]), seed=int(config.seed))
    scores.update(latent_kmeans_error=ceiling['kmeans_error'],
                  latent_gmm_error=ceiling['gmm_error'],
                  latent_neighbour_agreement=metrics.neighbour_label_agreement(
                      test_z, test_labels, k=10))
  return scores


def scores(context: outputs_lib.Context) -> dict[str, float]:
  """`latent_diagnostics` of the eval split, if `config.eval_latent_diagnostics`."""
  # .get: configs saved before this option existed restore without it.
  if not context.config.get('eval_latent_diagnostics', False):
    return {}
  labels = context.outputs['labels'] if context.labelled else None
  return latent_diagnostics(context.state, context.config, context.mesh,
                            context.outputs['z'], labels)
