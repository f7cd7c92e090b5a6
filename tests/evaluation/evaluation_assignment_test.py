"""How evaluation turns a state into clusters, and that eval images keep their labels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mnist
from lgae.core import parallel
from lgae.data import input_pipeline
from lgae.evaluation import run as evaluation
from lgae.core import state as state_lib
from tests import fake_mnist

NUM_TRAIN, NUM_TEST = 64, 40


@pytest.fixture(scope='module')
def config(tmp_path_factory):
  data_dir = fake_mnist.prepare(str(tmp_path_factory.mktemp('fake_mnist')), NUM_TRAIN, NUM_TEST)
  config = mnist.get_config('smoke')
  with config.unlocked():
    config.dataset.data_dir = data_dir
    config.eval_batch_size = 16   # 40 test images: three batches, the last one padded.
    config.eval_latent_diagnostics = False
  return config


def _written_test_split():
  """The test images and labels fake_mnist wrote (same generator, same draw order)."""
  rng = np.random.default_rng(0)
  rng.integers(0, 256, (NUM_TRAIN, 28, 28), dtype=np.uint8)
  rng.integers(0, 10, NUM_TRAIN, dtype=np.uint8)
  return (rng.integers(0, 256, (NUM_TEST, 28, 28), dtype=np.uint8),
          rng.integers(0, 10, NUM_TEST, dtype=np.uint8))


def test_eval_split_pairs_each_image_with_its_label(config):
  images, labels = [], []
  for batch in input_pipeline.eval_iterator(config):
    keep = batch['mask'] > 0
    images.append(batch['image'][keep])
    labels.append(batch['label'][keep])
  images, labels = np.concatenate(images), np.concatenate(labels)
  written_images, written_labels = _written_test_split()
  # tfds stores examples in its own (hashed) order: match each evaluated image
  # to the written one, then compare labels. 28x28 digits are zero-padded
  # (2 px each side) to 32x32 and scaled to [-1, 1].
  recovered = np.round((images[:, 2:30, 2:30, 0] + 1.0) * 127.5).astype(np.uint8)
  label_of = {img.tobytes(): int(lab) for img, lab in zip(written_images, written_labels)}
  assert len(label_of) == NUM_TEST and len(recovered) == NUM_TEST
  assert [label_of[img.tobytes()] for img in recovered] == labels.tolist()


def _with_cat_head(state, kernel, bias):
  params = jax.tree.map(lambda x: x, state.disc.params)
  params['q_cat0'] = {'kernel': kernel, 'bias': bias}
  return state.replace(disc=state.disc.replace(params=params))


def test_clusters_are_the_argmax_of_q_first_cat_head_on_enc_x(config):
  mesh = parallel.make_mesh()
  state = state_lib.create_state(config, mesh)
  q = state.disc.params['q_cat0']
  # A head that ignores its input and prefers category 3: every image is cluster 3.
  state3 = _with_cat_head(state, jnp.zeros_like(q['kernel']), 5.0 * jax.nn.one_hot(3, 10))
  out = evaluation.collect(state3, config, mesh)
  np.testing.assert_array_equal(out['clusters'][:, 0], np.full(NUM_TEST, 3))
  scores = evaluation.evaluate(state3, config, mesh)
  _, labels = _written_test_split()
  assert scores['num_clusters_used'] == 1
  # One cluster matched to the most frequent label: everything else is an error.
  expected = 100.0 * (1 - np.bincount(labels).max() / NUM_TEST)
  assert scores['test_error_hungarian'] == pytest.approx(expected)

  # The cluster follows Enc(x): a head reading the trunk's features gives
  # exactly the argmax of the logits computed by hand from Enc(x).
  out = evaluation.collect(state, config, mesh)
  z = jnp.asarray(out['z'])
  logits = state.disc.apply_fn({'params': state.disc.params}, z)['cat_logits'][0]
  np.testing.assert_array_equal(out['clusters'][:, 0], np.argmax(np.asarray(logits), axis=-1))


def test_recon_mse_equals_an_independent_numpy_computation(config):
  mesh = parallel.make_mesh()
  state = state_lib.create_state(config, mesh)
  scores = evaluation.evaluate(state, config, mesh)
  errors = []
  for batch in input_pipeline.eval_iterator(config):
    keep = batch['mask'] > 0
    recon = np.asarray(jax.device_get(evaluation.reconstruct(state, jnp.asarray(batch['image']))))
    errors.append(np.square(batch['image'][keep].astype(np.float64) - recon[keep]))
  assert scores['recon_mse'] == pytest.approx(float(np.concatenate(errors).mean()), rel=1e-5)


def test_nmi_hand_computed():
  from lgae.evaluation import metrics  # pylint: disable=g-import-not-at-top
  # labels 0 0 1 1, clusters 0 0 0 1: H(Y) = ln 2, H(C) = H(3/4, 1/4),
  # I = H(Y) - 3/4 H(2/3, 1/3); NMI = I / mean(H(Y), H(C)).
  h = lambda *p: -sum(x * np.log(x) for x in p)
  mutual = h(0.5, 0.5) - 0.75 * h(2 / 3, 1 / 3)
  expected = mutual / ((h(0.5, 0.5) + h(0.75, 0.25)) / 2)
  scores = metrics.clustering_scores(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1]))
  assert scores['nmi'] == pytest.approx(expected, rel=1e-9)
  assert expected == pytest.approx(0.3437, abs=1e-3)


def test_cluster_neighbour_agreement_is_label_free_and_matches_brute_force(config):
  mesh = parallel.make_mesh()
  state = state_lib.create_state(config, mesh)
  q = state.disc.params['q_cat0']
  # One cluster for every image: every neighbour agrees, whatever the labels.
  state3 = _with_cat_head(state, jnp.zeros_like(q['kernel']), 5.0 * jax.nn.one_hot(3, 10))
  assert evaluation.evaluate(state3, config, mesh)['cluster_neighbour_agreement'] == 1.0

  # A head that reads Enc(x): the score is the fraction of each test latent's
  # 10 nearest other test latents (brute force here) in its own cluster.
  out = evaluation.collect(state, config, mesh)
  z, clusters = out['z'].astype(np.float64), out['clusters'][:, 0]
  d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
  np.fill_diagonal(d, np.inf)
  nearest = np.argsort(d, axis=1)[:, :10]
  expected = float(np.mean(clusters[nearest] == clusters[:, None]))
  assert len(np.unique(clusters)) > 1   # otherwise the check above is the only one.
  score = evaluation.evaluate(state, config, mesh)['cluster_neighbour_agreement']
  assert score == pytest.approx(expected)
