"""Evaluation of a smoke state on mock MNIST: keys, values, padding invariance, generation;
the score families that compose it."""

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import chairs, mnist
from lgae.core import checkpointing, latent, parallel
from lgae.data import input_pipeline
from lgae.evaluation import metrics, run as evaluation
from lgae.evaluation import classifier as classifier_lib
from lgae.evaluation import cluster_agreement, clustering, disentanglement, generation
from lgae.evaluation import latent_diagnostics, outputs as outputs_lib, reconstruction
from lgae.core import state as state_lib

NUM_MOCK = 64  # Examples per mock split; eval_batch_size 32 divides it, 24 does not.


@pytest.fixture(scope='module')
def setup():
  config = mnist.get_config('smoke')
  mesh = parallel.make_mesh()
  state = state_lib.create_state(config, mesh)
  # An untrained classifier is as good a feature extractor for these checks,
  # and skips compiling its training step (classifier_test trains one).
  model = classifier_lib.build_model(classifier_lib.RECIPES['mnist'])
  params = model.init(jax.random.PRNGKey(0), np.zeros((1, 32, 32, 1), np.float32))['params']
  clf = classifier_lib.Classifier(model=model, params=params, test_accuracy=0.0, directory='',
                                  from_cache=False)
  with tfds.testing.mock_data(num_examples=NUM_MOCK):
    scores = evaluation.evaluate_checkpoint_metrics(state, config, mesh, classifier=clf)
  return config, mesh, state, clf, scores


def test_checkpoint_metrics_keys_and_values(setup):
  _, _, _, _, scores = setup
  assert tuple(scores) == evaluation.CHECKPOINT_METRIC_KEYS
  assert scores['step'] == 0
  for key in evaluation.CHECKPOINT_METRIC_KEYS:
    if key in evaluation.DISENTANGLEMENT_KEYS:
      assert scores[key] is None, key   # MNIST has no ground-truth factors.
    else:
      assert scores[key] is not None and math.isfinite(scores[key]), key
  for key in ('test_error_hungarian', 'test_error_majority', 'generated_label_accuracy'):
    assert 0.0 <= scores[key] <= 100.0, key
  assert 1 <= scores['num_clusters_used'] <= 10
  assert scores['frechet_distance'] >= 0.0 and scores['recon_mse'] > 0.0


def test_padded_batches_give_the_same_scores(setup):
  config, mesh, state, clf, scores = setup
  padded = mnist.get_config('smoke')
  padded.eval_batch_size = 24  # 64 = 2 * 24 + 16: the last batch is padded.
  with tfds.testing.mock_data(num_examples=NUM_MOCK):
    other = evaluation.evaluate_checkpoint_metrics(state, padded, mesh, classifier=clf)
  assert other.keys() == scores.keys()
  for key in scores:
    if scores[key] is None:   # a score that does not apply (MNIST: disentanglement).
      assert other[key] is None, key
      continue
    # Generated images are drawn per example index, so they are the same set
    # whatever the batch size; only float round-off may differ.
    assert other[key] == pytest.approx(scores[key], rel=1e-4, abs=1e-6), key


def test_without_classifier_generation_keys_are_none(setup):
  config, mesh, state, _, scores = setup
  with tfds.testing.mock_data(num_examples=NUM_MOCK):
    plain = evaluation.evaluate(state, config, mesh)
    full = evaluation.evaluate_checkpoint_metrics(state, config, mesh)
  assert 'frechet_distance' not in plain and 'generated_label_accuracy' not in plain
  assert full['frechet_distance'] is None and full['generated_label_accuracy'] is None
  assert full['test_error_hungarian'] == scores['test_error_hungarian']


def test_unlabelled_dataset_has_no_clustering_scores(setup):
  _, mesh, state, _, _ = setup
  config = mnist.get_config('smoke')  # Same model, so the smoke state fits.
  config.dataset.name = 'celeb_a'     # Labels are all 0 in our pipeline.
  config.dataset.resize = 'resize'    # 218x178 faces shrink (not pad) to 32x32.
  assert classifier_lib.get_or_train_classifier(config) is None
  with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
    scores = evaluation.evaluate_checkpoint_metrics(state, config, mesh)
  for key in ('test_error_hungarian', 'test_error_majority', 'nmi', 'ari', 'num_clusters_used',
              'frechet_distance', 'recon_frechet_distance', 'generated_label_accuracy'):
    assert scores[key] is None, key
  assert math.isfinite(scores['recon_mse'])


class _ConstantLabelClassifier:
  """Says 3 for every image; features are a few pixels (enough for a covariance)."""

  def features_and_logits(self, images):
    images = np.asarray(jax.device_get(images))
    return images.reshape(len(images), -1)[:, 500:504], np.tile(np.eye(10)[3], (len(images), 1))


def test_generated_label_accuracy_uses_the_cluster_mapping(setup):
  config, mesh, state, _, _ = setup
  real = np.random.default_rng(0).normal(size=(NUM_MOCK, 4))
  scores = evaluation.generation_scores(state, config, mesh, _ConstantLabelClassifier(), real,
                                        cluster_to_label={0: 3, 1: 5})
  # Generated image i has category i mod 10; only category 0 maps to label 3,
  # and categories Q never used (2..9) count as wrong.
  expected = 100.0 * np.mean(np.arange(NUM_MOCK) % 10 == 0)
  assert scores['generated_label_accuracy'] == pytest.approx(expected)
  assert math.isfinite(scores['frechet_distance'])
  again = evaluation.generation_scores(state, config, mesh, _ConstantLabelClassifier(), real,
                                       cluster_to_label={0: 3, 1: 5})
  assert again == scores  # Fixed generation keys: reproducible.


def test_generation_codes_balance_categories_and_do_not_depend_on_batching():
  config = mnist.get_config('smoke')
  layout = latent.CodeLayout.from_config(config)
  codes_of = jax.jit(evaluation.generation_codes, static_argnums=1)  # One compile.
  codes = codes_of(np.arange(20, dtype=np.int32), layout, 0)
  np.testing.assert_array_equal(codes.categorical[:, 0], np.arange(20) % 10)
  shifted = codes_of(np.arange(10, 30, dtype=np.int32), layout, 0)
  np.testing.assert_allclose(shifted.noise[:10], codes.noise[10:])
  other_seed = codes_of(np.arange(20, dtype=np.int32), layout, 1)
  assert not np.allclose(other_seed.noise, codes.noise)


def test_sample_images_and_grid(setup):
  config, _, state, _, _ = setup
  key = jax.random.PRNGKey(0)
  images = evaluation.sample_images(state, config, key, 6)
  assert images.shape == (6, 32, 32, 1) and np.all(np.abs(images) <= 1.0)
  grid = evaluation.sample_grid(state, config, key)
  assert grid.dtype == np.uint8 and grid.shape == (10 * 33 + 1, 10 * 33 + 1, 1)
  np.testing.assert_array_equal(grid, evaluation.sample_grid(state, config, key))


def test_fit_eval_batch_size():
  config = mnist.get_config('smoke')
  config.eval_batch_size = 30
  assert evaluation.fit_eval_batch_size(config, 4).eval_batch_size == 28
  assert evaluation.fit_eval_batch_size(config, 3).eval_batch_size == 30
  assert evaluation.fit_eval_batch_size(config, 64).eval_batch_size == 64
  assert config.eval_batch_size == 30  # A copy.


def test_load_checkpoint_errors(setup, tmp_path):
  config, mesh, state, _, _ = setup
  with pytest.raises(checkpointing.CheckpointError, match='No checkpoints'):
    evaluation.load_checkpoint(str(tmp_path / 'missing'))
  # A state saved beside a config of another model.
  writer = checkpointing.Checkpointer(str(tmp_path / 'mismatch'))
  writer.save(0, state, chairs.get_config('smoke'))
  writer.close()
  with pytest.raises(checkpointing.CheckpointError, match='does not match'):
    evaluation.load_checkpoint(str(tmp_path / 'mismatch'), mesh=mesh)


def test_recon_frechet_distance_is_that_of_the_reconstructions(setup):
  """The floor of `frechet_distance`: features of Dec(Enc(x)) against those of x."""
  config, mesh, state, clf, scores = setup
  real, recon = [], []
  with tfds.testing.mock_data(num_examples=NUM_MOCK):
    for batch in input_pipeline.eval_iterator(config):
      keep = batch['mask'] > 0
      images = jnp.asarray(batch['image'])
      real.append(np.asarray(clf.features(images))[keep])
      recon.append(np.asarray(clf.features(evaluation.reconstruct(state, images)))[keep])
  expected = metrics.frechet_distance(np.concatenate(real), np.concatenate(recon))
  assert scores['recon_frechet_distance'] == pytest.approx(expected, rel=1e-4)
  # Not the generated images' distance under another name.
  assert scores['recon_frechet_distance'] != pytest.approx(scores['frechet_distance'], rel=1e-2)


# -----------------------------------------------------------------------------
# Score families.
# -----------------------------------------------------------------------------

# eval.json's schema: existing eval.json files, experiments/results tables and
# experiments/docs/evaluation.md list the keys in this order.
EVAL_JSON_KEYS = (
    'step', 'test_error_hungarian', 'test_error_majority', 'nmi', 'ari', 'num_clusters_used',
    'recon_mse', 'frechet_distance', 'recon_frechet_distance', 'generated_label_accuracy',
    'generated_cosine_similarity', 'latent_frechet_distance', 'latent_precision',
    'latent_recall', 'latent_kmeans_error', 'latent_gmm_error', 'latent_neighbour_agreement',
    'cluster_neighbour_agreement', 'beta_vae_score', 'factor_vae_score', 'mig',
    'dci_disentanglement', 'dci_completeness', 'dci_informativeness', 'sap')


def test_checkpoint_metric_keys_are_the_families_keys_in_order():
  assert evaluation.FAMILIES == (clustering, reconstruction, generation, latent_diagnostics,
                                 cluster_agreement, disentanglement)
  assert evaluation.CHECKPOINT_METRIC_KEYS == ('step',) + tuple(
      key for family in evaluation.FAMILIES for key in family.KEYS)
  assert evaluation.CHECKPOINT_METRIC_KEYS == EVAL_JSON_KEYS
  assert evaluation.DISENTANGLEMENT_KEYS == EVAL_JSON_KEYS[-7:]


def test_each_family_writes_only_its_keys(setup):
  config, mesh, state, clf, scores = setup
  with tfds.testing.mock_data(num_examples=NUM_MOCK):
    outputs = evaluation.collect(state, config, mesh, classifier=clf)
  context = outputs_lib.Context(state=state, config=config, mesh=mesh, classifier=clf,
                                outputs=outputs)
  # (latent_diagnostics is left out: it re-reads the train split.)
  for family in (clustering, reconstruction, generation, cluster_agreement, disentanglement):
    result = family.scores(context)
    assert set(result) <= set(family.KEYS), family.__name__
    for key, value in result.items():   # The same numbers as the composed evaluation.
      assert value == scores[key], key
  # MNIST's applicable families write all of their keys; it has no factors.
  assert set(generation.scores(context)) == set(generation.KEYS)
  assert set(clustering.scores(context)) == set(clustering.KEYS)
  assert disentanglement.scores(context) == {}


def _family(name, keys, result):
  return types.SimpleNamespace(__name__=name, KEYS=keys, scores=lambda context: result)


def test_a_new_score_is_a_new_family():
  families = (_family('a', ('x', 'y'), {'y': 2.0}), _family('b', ('z',), {'z': 3.0}))
  assert evaluation.family_scores(None, families) == {'y': 2.0, 'z': 3.0}
  assert evaluation._checkpoint_metric_keys(families) == ('step', 'x', 'y', 'z')  # pylint: disable=protected-access


def test_a_family_writing_an_undeclared_key_is_an_error():
  with pytest.raises(ValueError, match=r"family wrong wrote \['w'\]"):
    evaluation.family_scores(None, (_family('wrong', ('x',), {'x': 1.0, 'w': 2.0}),))
  with pytest.raises(ValueError, match='share the eval.json keys'):
    evaluation._checkpoint_metric_keys(  # pylint: disable=protected-access
        (_family('a', ('x',), {}), _family('b', ('x',), {})))


def test_a_labelled_dataset_other_than_mnist_gets_generation_scores(setup, tmp_path):
  """Fashion-MNIST trains and caches its own classifier; nothing generation-related is null."""
  _, mesh, state, _, _ = setup
  config = mnist.get_config('smoke')   # Same 32x32x1 model, so the smoke state fits.
  config.dataset.name = 'fashion_mnist'
  config.dataset.resize = 'pad'
  config.dataset.data_dir = str(tmp_path)
  config.eval_latent_diagnostics = False
  with tfds.testing.mock_data(num_examples=NUM_MOCK, policy=tfds.testing.MockPolicy.USE_CODE):
    clf = classifier_lib.get_or_train_classifier(config, num_steps=2)
    scores = evaluation.evaluate_checkpoint_metrics(state, config, mesh, classifier=clf)
  assert clf.directory.startswith(str(tmp_path / 'lgae_classifiers' / 'fashion_mnist_'))
  for key in clustering.KEYS + generation.KEYS + reconstruction.KEYS:
    assert scores[key] is not None and math.isfinite(scores[key]), key
  assert 0.0 <= scores['generated_label_accuracy'] <= 100.0
