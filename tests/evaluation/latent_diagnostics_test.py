"""Oracles for the latent-space diagnostics in lgae.evaluation.metrics."""

import numpy as np
import pytest

from lgae.evaluation import metrics


def test_precision_recall_of_a_set_against_itself_is_one():
  x = np.random.default_rng(0).normal(size=(400, 4))
  pr = metrics.knn_precision_recall(x, x, k=3, chunk=128)
  assert pr == {'precision': 1.0, 'recall': 1.0}


def test_precision_recall_separate_precision_from_recall():
  rng = np.random.default_rng(1)
  real = rng.normal(size=(600, 2))
  # A fake set collapsed onto a small region near the real mode: realistic
  # (high precision) but covering little of the data (low recall).
  collapsed = 0.05 * rng.normal(size=(600, 2))
  pr = metrics.knn_precision_recall(real, collapsed, k=3)
  assert pr['precision'] > 0.95 and pr['recall'] < 0.2
  # A far-away fake set: neither.
  far = real + 100.0
  pr = metrics.knn_precision_recall(real, far, k=3)
  assert pr == {'precision': 0.0, 'recall': 0.0}


def test_precision_recall_hand_computed():
  # Real points on a line at 0, 1, 2, 3 with k = 1: every real radius is 1, so
  # the real manifold is [-1, 4]. Fakes at 0.5 and 10: precision 1/2.
  real = np.array([[0.0], [1.0], [2.0], [3.0]])
  fake = np.array([[0.5], [10.0], [10.5]])
  # Fake radii (k = 1): 9.5, 0.5, 0.5 -> the ball around 0.5 reaches [-9, 10]: all reals covered.
  pr = metrics.knn_precision_recall(real, fake, k=1)
  assert pr['precision'] == pytest.approx(1 / 3)
  assert pr['recall'] == 1.0


def test_precision_recall_checks_shapes():
  with pytest.raises(ValueError, match='dimension'):
    metrics.knn_precision_recall(np.zeros((10, 2)), np.zeros((10, 3)))
  with pytest.raises(ValueError, match='points > k'):
    metrics.knn_precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)


def test_clustering_ceiling_separated_blobs_and_structureless_points():
  rng = np.random.default_rng(2)
  centres = 20.0 * rng.normal(size=(4, 3))
  def blobs(n):
    labels = rng.integers(0, 4, n)
    return centres[labels] + rng.normal(size=(n, 3)), labels
  train_x, _ = blobs(800)
  test_x, test_y = blobs(400)
  scores = metrics.latent_clustering_ceiling(train_x, test_x, test_y, 4, seed=0)
  assert scores == {'kmeans_error': 0.0, 'gmm_error': 0.0}
  # Labels independent of the points: about chance (75 % error for 4 classes).
  noise = metrics.latent_clustering_ceiling(rng.normal(size=(800, 3)), rng.normal(size=(400, 3)),
                                            rng.integers(0, 4, 400), 4, seed=0)
  assert noise['kmeans_error'] > 55 and noise['gmm_error'] > 55


def test_neighbour_label_agreement_hand_computed_and_oracles():
  # Points on a line at 0, 1, 3, 10, 11 labelled a a b b b, k = 1.
  points = np.array([[0.0], [1.0], [3.0], [10.0], [11.0]])
  labels = np.array([0, 0, 1, 1, 1])
  # Nearest: 0->1 (agree), 1->0 (agree), 3->1 (disagree), 10->11 (agree), 11->10 (agree).
  assert metrics.neighbour_label_agreement(points, labels, k=1) == pytest.approx(4 / 5)
  rng = np.random.default_rng(3)
  blobs = np.repeat(100.0 * np.eye(3), 50, axis=0) + rng.normal(size=(150, 3))
  blob_labels = np.repeat(np.arange(3), 50)
  assert metrics.neighbour_label_agreement(blobs, blob_labels, k=5) == 1.0
  shuffled = rng.permutation(blob_labels)
  assert metrics.neighbour_label_agreement(blobs, shuffled, k=5) < 0.5
