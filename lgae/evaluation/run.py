"""Evaluation of a train state: clustering by Q, reconstruction, generation.

The jitted parts map fixed-size (padded) batches to per-example outputs, so
each compiles once; everything else is numpy, scored by the pure cores in
`lgae.evaluation.metrics`.

Scores (all on the eval split, `config.dataset.eval_split`):
  * clustering (the paper's Table 1 protocol): Q's first categorical head on
    Enc(x) against the class labels. Only for datasets with class labels (a
    tfds ClassLabel `label` feature, `has_class_labels`); CelebA and 3D Chairs
    carry a constant label 0 in our pipeline, where these scores would be
    meaningless.
  * `recon_mse`: mean squared reconstruction error per pixel.
  * generation (needs a `lgae.evaluation.classifier.Classifier`, MNIST only):
    `frechet_distance` between the classifier's penultimate features of the
    eval images and of as many generated images Dec(G(p, c));
    `recon_frechet_distance`, the same distance for the reconstructions
    Dec(Enc(x)) of the eval images: the floor of `frechet_distance` for any
    latent generator on this decoder (a perfect G reproduces Enc(x)'s
    distribution, and its images are then no better than the reconstructions); and
    `generated_label_accuracy`, the percent of generated images whose
    classifier label is the digit that Q's cluster of the same category maps
    to (Hungarian matching on the eval split).

Generated image `i` is drawn from `fold_in(fold_in(PRNGKey(config.seed),
_GENERATION_SALT), i)` with its first Cat code set to `i mod K`, so the
generated set depends on the seed and the split size only, not on the batch
size or the device count, and the categories are exactly balanced.
"""

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lgae.core import checkpointing, latent
from lgae.core import method as method_lib
from lgae.core import parallel
from lgae.core import state as state_lib
from lgae.data import input_pipeline
from lgae.evaluation import classifier as classifier_lib
from lgae.evaluation import disentanglement, metrics
from lgae.evaluation import plots

# The disentanglement scores, for datasets with ground-truth factors (dSprites).
DISENTANGLEMENT_KEYS = ('beta_vae_score', 'factor_vae_score', 'mig', 'dci_disentanglement',
                        'dci_completeness', 'dci_informativeness', 'sap')
# Keys of `evaluate_checkpoint_metrics`, in the order they are written.
CHECKPOINT_METRIC_KEYS = ('step', 'test_error_hungarian', 'test_error_majority', 'nmi', 'ari',
                          'num_clusters_used', 'recon_mse', 'frechet_distance',
                          'recon_frechet_distance', 'generated_label_accuracy',
                          'generated_cosine_similarity',
                          'latent_frechet_distance', 'latent_precision', 'latent_recall',
                          'latent_kmeans_error',
                          'latent_gmm_error', 'latent_neighbour_agreement',
                          'cluster_neighbour_agreement') + DISENTANGLEMENT_KEYS
# Points per set for the latent k-NN precision/recall (cost grows as its square).
_PRECISION_RECALL_POINTS = 5000

# Separates the evaluation's generation keys from every other use of the seed.
_GENERATION_SALT = 0x1A6E

State = method_lib.State


def has_class_labels(config: ml_collections.ConfigDict) -> bool:
  """Whether the dataset's labels are classes (clustering scores make sense).

  Read from the dataset's tfds features: a ClassLabel `label` feature.
  """
  return input_pipeline.has_class_labels(config)


# -----------------------------------------------------------------------------
# Encoding, decoding, generating.
# -----------------------------------------------------------------------------


def eval_outputs(state, images: jax.Array) -> dict[str, jax.Array]:
  """Per-example outputs of the state's method on real images (inference mode).

  Returns {'clusters': [N, num_cat_codes] int32 (argmax of each Cat head; the
  first is the Table 1 assignment), 'z': [N, D] the method's representation}
  and, for methods with a decoder, 'sq_err': [N] per-example reconstruction MSE.
  """
  out = method_lib.for_state(state).eval_outputs(state, images)
  cat_logits = out['cat_logits']
  clusters = (jnp.stack([jnp.argmax(l, axis=-1) for l in cat_logits], axis=1)
              if cat_logits else jnp.zeros((images.shape[0], 0), jnp.int32))
  result = {'clusters': clusters.astype(jnp.int32), 'z': out['z']}
  if 'recon' in out:
    # recon_mse's one home: per-example mean squared error on device (so no
    # image leaves the devices); `evaluate` averages it over the unpadded
    # examples. Tested against an independent numpy computation.
    result['sq_err'] = jnp.mean(jnp.square(images - out['recon']), axis=(1, 2, 3))
  return result


def generate_from_codes(state, codes: latent.Codes, layout: latent.CodeLayout) -> jax.Array:
  """Generated images [N, H, W, C] in [-1, 1] (LatentGAN-AE: Dec(G(codes)))."""
  return method_lib.for_state(state).generate(state, codes, layout)


# Jitted once per code layout; the state's shardings decide where it runs.
decode_codes = jax.jit(generate_from_codes, static_argnames='layout')


@jax.jit
def reconstruct(state, images: jax.Array) -> jax.Array:
  """Dec(Enc(x)) in inference mode (methods with a decoder only)."""
  return method_lib.for_state(state).eval_outputs(state, images)['recon']


def has_decoder(state) -> bool:
  """Whether the state's method reconstructs images (eval_outputs has 'recon')."""
  return method_lib.for_state(state).has_decoder


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
def _jitted_generate_latents(mesh: jax.sharding.Mesh, layout: latent.CodeLayout, seed: int):
  def generate(state, indices):
    codes = generation_codes(indices, layout, seed)
    return method_lib.for_state(state).generated_latents(state, codes, layout)
  return jax.jit(generate, in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
                 out_shardings=parallel.replicated(mesh))


@functools.lru_cache(maxsize=8)
def _jitted_eval_outputs(mesh: jax.sharding.Mesh):
  rep = parallel.replicated(mesh)
  return jax.jit(eval_outputs, in_shardings=(rep, parallel.batch_sharded(mesh)),
                 out_shardings=rep)


@functools.lru_cache(maxsize=8)
def _jitted_generate(mesh: jax.sharding.Mesh, layout: latent.CodeLayout, seed: int):
  def generate(state, indices):
    return generate_from_codes(state, generation_codes(indices, layout, seed), layout)
  return jax.jit(generate, in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
                 out_shardings=parallel.batch_sharded(mesh))


# -----------------------------------------------------------------------------
# Passes over the data.
# -----------------------------------------------------------------------------


def collect(state: State, config: ml_collections.ConfigDict,
            mesh: jax.sharding.Mesh, *, split: str | None = None,
            classifier: classifier_lib.Classifier | None = None) -> dict[str, np.ndarray]:
  """Runs `eval_outputs` over a whole split; returns unpadded numpy arrays.

  Returns:
    {'labels': [N], 'clusters': [N, num_cat_codes], 'z': [N, D]}, 'sq_err': [N]
    for methods with a decoder, plus 'features' (and, with a decoder,
    'recon_features'): [N, F] (the classifier's features of x and of
    Dec(Enc(x))) if `classifier` is given,
    and 'factors': [N, num_factors] where the dataset has ground-truth factors.
  """
  parallel.check_divisible(config.eval_batch_size, mesh, field='eval_batch_size')
  fn = _jitted_eval_outputs(mesh)
  decoder = has_decoder(state)
  keys = ('clusters', 'z') + (('sq_err',) if decoder else ()) + (
      ('features',) if classifier is not None else ()) + (
      ('recon_features',) if classifier is not None and decoder else ())
  parts = {k: [] for k in ('labels',) + keys}
  for batch in input_pipeline.eval_iterator(config, split=split, **parallel.process_shard()):
    # Each process holds its rows; labels and mask come back whole (to_host),
    # so every process scores the same global batch, whatever their number.
    placed = parallel.shard_batch(batch, mesh)
    out = fn(state, placed['image'])
    if classifier is not None:
      out['features'] = classifier.features(placed['image'])
      if decoder:
        out['recon_features'] = classifier.features(reconstruct(state, placed['image']))
    out['label'], out['mask'] = placed['label'], placed['mask']
    if 'factors' in placed:
      out['factors'] = placed['factors']
    out = parallel.to_host(out)
    keep = out['mask'] > 0
    parts['labels'].append(out['label'][keep])
    if 'factors' in out:
      parts.setdefault('factors', []).append(out['factors'][keep])
    for k in keys:
      parts[k].append(out[k][keep])
  return {k: np.concatenate(v) for k, v in parts.items()}


def _shard_indices(indices: np.ndarray, mesh: jax.sharding.Mesh) -> jax.Array:
  """A global batch of indices (known to every process) split over `mesh`."""
  rows = input_pipeline.process_rows(len(indices), jax.process_index(), jax.process_count())
  return parallel.shard_batch({'i': indices[rows]}, mesh)['i']


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
    images = fn(state, _shard_indices(indices, mesh))
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


def generated_latents(state: State, config: ml_collections.ConfigDict,
                      mesh: jax.sharding.Mesh, num: int) -> np.ndarray:
  """G(p, c) for the same `num` codes the generated eval images use: [num, latent]."""
  layout = latent.CodeLayout.from_config(config)
  batch_size = int(config.eval_batch_size)
  fn = _jitted_generate_latents(mesh, layout, int(config.seed))
  parts = []
  for start in range(0, num, batch_size):
    indices = np.arange(start, start + batch_size, dtype=np.int32)
    z = parallel.to_host(fn(state, _shard_indices(indices, mesh)))
    parts.append(z[:min(batch_size, num - start)])
  return np.concatenate(parts)


def latent_diagnostics(state: State, config: ml_collections.ConfigDict,
                       mesh: jax.sharding.Mesh, test_z: np.ndarray,
                       test_labels: np.ndarray | None) -> dict[str, float]:
  """Why a run clusters as it does, measured in the representation space.

  * `latent_frechet_distance`, `latent_precision`, `latent_recall` (methods
    with a generator in that space, the LatentGAN-AE's G): G(p, c)
    against Enc(x) of the eval split (Frechet distance of fitted Gaussians;
    k-NN precision/recall on up to 5000 points each). Q is trained on G's
    latents and applied to the encoder's: where they differ, Q's
    classification of real latents is an extrapolation.
  * `latent_kmeans_error`, `latent_gmm_error` (labelled datasets): the
    clustering ceiling of the latent itself, fitted on Enc(x_train).
  * `latent_neighbour_agreement` (labelled datasets): the fraction of each
    test latent's 10 nearest test latents with its label, what a
    neighbour-consistency term (`config.loss.neighbour_weight`) can exploit.
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
    train_z = collect(state, config, mesh, split=config.dataset.train_split)['z']
    ceiling = metrics.latent_clustering_ceiling(
        train_z, test_z, test_labels, int(config.codes.categorical[0]), seed=int(config.seed))
    scores.update(latent_kmeans_error=ceiling['kmeans_error'],
                  latent_gmm_error=ceiling['gmm_error'],
                  latent_neighbour_agreement=metrics.neighbour_label_agreement(
                      test_z, test_labels, k=10))
  return scores


def disentanglement_scores(z: np.ndarray, factors: np.ndarray, seed: int) -> dict[str, float]:
  """The five disentanglement metrics (seven keys) of Enc(x) against the factors.

  The representation scored is the encoder's latent z = Enc(x) (the paper's
  "disentangled latent distribution" is the distribution of z that G models).
  Rows are the eval split's, which for dSprites is a uniform sample of the
  factor grid (`lgae.evaluation.disentanglement` explains what that changes). The
  published protocols' sizes (10000 train / 5000 eval) are used when the split
  has 15000 points or more, otherwise scaled down to 2/3 and 1/3 of it (smoke
  runs); factors constant over the split (a tiny split) are dropped.
  """
  varying = np.array([len(np.unique(factors[:, i])) > 1 for i in range(factors.shape[1])])
  factors = factors[:, varying]
  n = len(z)
  num_train, num_eval = (10000, 5000) if n >= 15000 else (max(2 * n // 3, 1), max(n // 3, 1))
  if factors.shape[1] == 0 or num_train + num_eval > n:
    return {}
  return disentanglement.all_scores(
      z, factors, np.random.default_rng(seed), num_train=num_train, num_eval=num_eval,
      num_variance_estimate=min(10000, n))


def evaluate(state: State, config: ml_collections.ConfigDict,
             mesh: jax.sharding.Mesh, *, split: str | None = None,
             classifier: classifier_lib.Classifier | None = None) -> dict[str, float]:
  """Unsupervised-classification, reconstruction and generation scores on the eval split.

  Clustering uses Q's first categorical head (MNIST: the Cat(10) code), the
  paper's Table 1 protocol, and is only reported for labelled datasets.
  Generation scores need `classifier`; without it they are omitted.
  """
  outputs = collect(state, config, mesh, split=split, classifier=classifier)
  scores = {'recon_mse': float(np.mean(outputs['sq_err']))} if 'sq_err' in outputs else {}
  mapping = None
  if outputs['clusters'].shape[1] and len(outputs['z']) > 1:
    # Label-free, so it can compare runs or restarts without labels: how often
    # a test latent's 10 nearest test latents fall in its Q cluster (README,
    # "Reproducing Table 1", for how it tracks the test error across seeds).
    scores['cluster_neighbour_agreement'] = metrics.neighbour_label_agreement(
        outputs['z'], outputs['clusters'][:, 0], k=min(10, len(outputs['z']) - 1))
  if has_class_labels(config) and outputs['clusters'].shape[1]:
    num_clusters = int(config.codes.categorical[0])
    clusters = outputs['clusters'][:, 0]
    scores.update(metrics.clustering_scores(outputs['labels'], clusters,
                                            num_clusters=num_clusters))
    mapping = metrics.hungarian_mapping(outputs['labels'], clusters)
  elif has_class_labels(config) and method_lib.for_state(state).categories_are_classes:
    # A class-conditional generator: its category k was built from class k.
    mapping = {k: k for k in range(int(config.codes.categorical[0]))}
  if classifier is not None and 'recon_features' in outputs:
    scores['recon_frechet_distance'] = metrics.frechet_distance(outputs['features'],
                                                                outputs['recon_features'])
  if classifier is not None:
    scores.update(generation_scores(state, config, mesh, classifier, outputs['features'],
                                    mapping))
  if 'factors' in outputs:
    scores.update(disentanglement_scores(outputs['z'], outputs['factors'], config.seed))
  # .get: configs saved before this option existed restore without it.
  if config.get('eval_latent_diagnostics', False):
    labels = outputs['labels'] if has_class_labels(config) else None
    scores.update(latent_diagnostics(state, config, mesh, outputs['z'], labels))
  return scores


def evaluate_checkpoint_metrics(
    state: State, config: ml_collections.ConfigDict,
    mesh: jax.sharding.Mesh, *, split: str | None = None,
    classifier: classifier_lib.Classifier | None = None) -> dict[str, float | int | None]:
  """`evaluate` as a dict with every key of `CHECKPOINT_METRIC_KEYS`.

  Keys that do not apply (clustering without class labels, generation without
  a classifier) are None, so files written from different datasets share one
  schema. Errors are in percent.
  """
  scores = evaluate(state, config, mesh, split=split, classifier=classifier)
  result = {key: scores.get(key) for key in CHECKPOINT_METRIC_KEYS}
  result['step'] = int(jax.device_get(state.step))
  if result['num_clusters_used'] is not None:
    result['num_clusters_used'] = int(result['num_clusters_used'])
  return result


# -----------------------------------------------------------------------------
# Samples for TensorBoard and figures.
# -----------------------------------------------------------------------------


def sample_images(state: State, config: ml_collections.ConfigDict,
                  key: jax.Array, num: int) -> np.ndarray:
  """`num` images Dec(G(p, c)) with all codes drawn from their priors: [num, H, W, C]."""
  layout = latent.CodeLayout.from_config(config)
  return parallel.to_host(decode_codes(state, latent.sample(key, layout, num), layout))


def sample_grid(state: State, config: ml_collections.ConfigDict,
                key: jax.Array, num_columns: int = 10) -> np.ndarray:
  """A Fig. 2 style uint8 grid: a row per category of the first Cat code, a column per noise draw.

  Without a Cat code it is a num_columns x num_columns grid of samples.
  """
  layout = latent.CodeLayout.from_config(config)
  if layout.categorical:
    rows = layout.categorical[0]
    codes = latent.category_grid(key, layout, 0, num_columns)
  else:
    rows = num_columns
    codes = latent.sample(key, layout, rows * num_columns)
  images = parallel.to_host(decode_codes(state, codes, layout))
  return plots.image_grid(np.asarray(images), rows, num_columns)


# -----------------------------------------------------------------------------
# Checkpoints.
# -----------------------------------------------------------------------------


def fit_eval_batch_size(config: ml_collections.ConfigDict,
                        num_devices: int) -> ml_collections.ConfigDict:
  """A copy of `config` whose `eval_batch_size` divides over `num_devices`.

  A checkpoint written on N devices may be evaluated on M; the eval batch size
  only sets the padding, which no score depends on, so rounding it down to a
  multiple of M (at least M) is safe.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  size = int(config.eval_batch_size)
  if size % num_devices:
    config.eval_batch_size = max(num_devices, size // num_devices * num_devices)
  return config


def load_checkpoint(workdir: str, step: int | None = None,
                    mesh: jax.sharding.Mesh | None = None
                    ) -> tuple[State, ml_collections.ConfigDict,
                               jax.sharding.Mesh]:
  """Restores `(state, config, mesh)` from `workdir` read-only.

  Args:
    workdir: a run directory written by `experiments.main`.
    step: the checkpoint step; None for the latest.
    mesh: where to place the state; default every device of this machine.
      The saved `eval_batch_size` is adjusted to divide over it.

  Returns:
    The replicated state, the saved config and the mesh.

  Raises:
    checkpointing.CheckpointError: no checkpoint, a damaged one, or one that
      does not match its own config.
  """
  mesh = mesh or parallel.make_mesh()
  checkpointer = checkpointing.Checkpointer(workdir, read_only=True)
  try:
    config = checkpointer.restore_config(step)
    try:
      abstract = state_lib.abstract_state(config, mesh)
    except Exception as e:  # A config JSON that parses but is not a model.
      raise checkpointing.CheckpointError(
          f'The config saved in {checkpointer.directory} does not describe an lgae model '
          f'({type(e).__name__}: {e}).') from e
    state = checkpointer.restore_state(abstract, step)
  finally:
    checkpointer.close()
  return state, fit_eval_batch_size(config, mesh.devices.size), mesh


def json_ready(scores: dict[str, Any]) -> dict[str, Any]:
  """Non-finite floats become None, so the JSON is strict (no NaN tokens)."""
  return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
          for k, v in scores.items()}
