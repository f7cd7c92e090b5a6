"""Score family: generation, judged by the dataset's feature classifier.

Needs a `lgae.evaluation.classifier.Classifier` (one is trained and cached for
every dataset with class labels); without one these keys are omitted.

  * `frechet_distance` between the classifier's penultimate features of the
    eval images and of as many generated images (LatentGAN-AE: Dec(G(p, c))).
  * `recon_frechet_distance`, the same distance for the reconstructions
    Dec(Enc(x)) of the eval images (methods with a decoder): the floor of
    `frechet_distance` for any latent generator on this decoder (a perfect G
    reproduces Enc(x)'s distribution, and its images are then no better than
    the reconstructions).
  * `generated_label_accuracy`, the percent of generated images whose
    classifier label is the class that their category stands for
    (`clustering.cluster_to_label`: Q's cluster of the same category, matched
    on the eval split; labelled datasets only).
  * `generated_cosine_similarity` (methods with a Cat code): the mean cosine
    of two images generated for the same category, pixels in [0, 1] (Vargas
    Aguilar et al.'s diversity measure, 1 = identical).

Generated image `i` is drawn from `fold_in(fold_in(PRNGKey(config.seed),
_GENERATION_SALT), i)` with its first Cat code set to `i mod K`, so the
generated set depends on the seed and the split size only, not on the batch
size or the device count, and the categories are exactly balanced.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lgae.core import latent
from lgae.core import method as method_lib
from lgae.core import parallel
from lgae.evaluation import classifier as classifier_lib
from lgae.evaluation import clustering, metrics
from lgae.evaluation import outputs as outputs_lib

KEYS = ('frechet_distance', 'recon_frechet_distance', 'generated_label_accuracy',
        'generated_cosine_similarity')

# Separates the evaluation's generation keys from every other use of the seed.
_GENERATION_SALT = 0x1A6E

State = method_lib.State


def generate_from_codes(state, codes: latent.Codes, layout: latent.CodeLayout) -> jax.Array:
  """Generated images [N, H, W, C] in [-1, 1] (LatentGAN-AE: Dec(G(codes)))."""
  return method_lib.for_state(state).generate(state, codes, layout)


# Jitted once per code layout; the state's shardings decide where it runs.
decode_codes = jax.jit(generate_from_codes, static_argnames='layout')


def generation_codes(indices: jax.Array, layout: latent.CodeLayout, seed: int) -> latent.Codes:
  """The codes of generated eval images `indices` (see the module docstring)."""
  base = jax.random.fold_in(jax.random.PRNGKey(seed), _GENERATION_SALT)
  keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(base, indices)
  one = lambda key: jax.tree.map(lambda a: a[0], latent.sample(key, layout, 1))
  codes = jax.vmap(one)(keys)
  if layout.categorical:
    first = (indices % layout.categorical[0]).astype(jnp.int32)
    codes = dataclasses.replace(codes, categorical=codes.categorical.at[:, 0].set(first))
  return codes


@functools.lru_cache(maxsize=8)
def _jitted_generate(mesh: jax.sharding.Mesh, layout: latent.CodeLayout, seed: int):
  def generate(state, indices):
    return generate_from_codes(state, generation_codes(indices, layout, seed), layout)
  return jax.jit(generate, in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
                 out_shardings=parallel.batch_sharded(mesh))


def generation_scores(state: State, config: ml_collections.ConfigDict,
                      mesh: jax.sharding.Mesh, classifier: classifier_lib.Classifier,
                      real_features: np.ndarray,
                      cluster_to_label: dict[int, int] | None) -> dict[str, float]:
  """Frechet distance and label accuracy of `len(real_features)` generated images.

  Args:
    state: the train state.
    config: uses `seed`, `eval_batch_size` and `codes`.
    mesh: the device mesh (`eval_batch_size` must divide over it).
    classifier: the feature extractor and labeller.
    real_features: [N, F] classifier features of the eval split.
    cluster_to_label: Q's cluster -> class label (`metrics.hungarian_mapping`
      on the eval split); None skips `generated_label_accuracy`.

  Returns:
    {'frechet_distance': float}; with a Cat code, 'generated_cosine_similarity'
    (the mean cosine of two images generated for the same category, pixels in
    [0, 1]: Vargas Aguilar et al.'s diversity measure, 1 = identical); with a
    mapping and a Cat code, {'generated_label_accuracy': percent}.
  """
  layout = latent.CodeLayout.from_config(config)
  batch_size = int(config.eval_batch_size)
  parallel.check_divisible(batch_size, mesh, field='eval_batch_size')
  fn = _jitted_generate(mesh, layout, int(config.seed))
  num = real_features.shape[0]
  num_categories = layout.categorical[0] if layout.categorical else 0
  features, predicted = [], []
  unit_sums, unit_counts = 0.0, 0.0
  for start in range(0, num, batch_size):
    # Always full batches (one compile); the surplus images past `num` are dropped.
    indices = np.arange(start, start + batch_size, dtype=np.int32)
    images = fn(state, outputs_lib.shard_indices(indices, mesh))
    feats, logits = parallel.to_host(classifier.features_and_logits(images))
    keep = min(batch_size, num - start)
    features.append(feats[:keep])
    predicted.append(np.argmax(logits[:keep], axis=-1))
    if num_categories:
      # Image i is drawn for category i % K (`generation_codes`).
      sums, counts = metrics.class_unit_sums(parallel.to_host(images)[:keep],
                                             indices[:keep] % num_categories, num_categories)
      unit_sums, unit_counts = unit_sums + sums, unit_counts + counts
  scores = {'frechet_distance': metrics.frechet_distance(real_features, np.concatenate(features))}
  if num_categories:
    scores['generated_cosine_similarity'] = metrics.mean_pairwise_cosine(unit_sums, unit_counts)
  if cluster_to_label is not None and layout.categorical:
    categories = np.arange(num) % layout.categorical[0]
    # A category Q never predicts on real data has no label: its images get a
    # label the classifier never outputs (its number of classes), so they count as wrong.
    unmatched = int(logits.shape[-1])
    expected = np.array([cluster_to_label.get(int(k), unmatched) for k in categories])
    scores['generated_label_accuracy'] = metrics.label_accuracy(
        expected, np.concatenate(predicted))['accuracy']
  return scores


def scores(context: outputs_lib.Context) -> dict[str, float]:
  """The family's `KEYS` that apply; {} without a classifier."""
  if context.classifier is None:
    return {}
  outputs = context.outputs
  result = {}
  if 'recon_features' in outputs:
    result['recon_frechet_distance'] = metrics.frechet_distance(outputs['features'],
                                                                outputs['recon_features'])
  result.update(generation_scores(context.state, context.config, context.mesh,
                                  context.classifier, outputs['features'],
                                  clustering.cluster_to_label(context)))
  return result
