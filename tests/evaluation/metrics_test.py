"""Oracle tests for `lgae.evaluation.metrics`: each expected value is derived by hand."""

import numpy as np
import pytest

from lgae.evaluation import metrics


def _permuted_clusters(
    labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Returns `(clusters, permutation)` with clusters = permutation[labels]."""
  permutation = np.random.default_rng(seed).permutation(labels.max() + 1)
  return permutation[labels], permutation


# -----------------------------------------------------------------------------
# Clustering.
# -----------------------------------------------------------------------------


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_perfect_clustering_under_any_permutation(seed):
  labels = np.random.default_rng(0).integers(0, 10, size=200)
  clusters, _ = _permuted_clusters(labels, seed)
  scores = metrics.clustering_scores(labels, clusters, num_clusters=10)
  assert scores['test_error_hungarian'] == pytest.approx(0.0)
  assert scores['test_error_majority'] == pytest.approx(0.0)
  assert scores['nmi'] == pytest.approx(1.0)
  assert scores['ari'] == pytest.approx(1.0)
  assert scores['num_clusters_used'] == len(np.unique(labels))


def test_scores_are_plain_floats():
  labels = np.array([0, 1, 1, 2])
  scores = metrics.clustering_scores(labels, labels)
  assert set(scores) == {'test_error_hungarian', 'test_error_majority', 'nmi',
                         'ari', 'num_clusters_used'}
  assert all(type(value) is float for value in scores.values())


def test_constant_clustering():
  # Class shares 50 %, 30 %, 20 %: the one cluster is "class 0" for both
  # conventions, so both errors are 100 - 50.
  labels = np.array([0] * 5 + [1] * 3 + [2] * 2)
  clusters = np.full_like(labels, 7)
  scores = metrics.clustering_scores(labels, clusters)
  assert scores['test_error_majority'] == pytest.approx(50.0)
  assert scores['test_error_hungarian'] == pytest.approx(50.0)
  assert scores['nmi'] == pytest.approx(0.0, abs=1e-12)
  assert scores['ari'] == pytest.approx(0.0, abs=1e-12)
  assert scores['num_clusters_used'] == 1


def test_hand_computed_contingency():
  # Contingency (rows = labels, cols = clusters):
  #            c0  c1  c2
  #   label 0   3   1   0
  #   label 1   0   2   2
  #   label 2   0   2   0
  # Majority: column maxima 3 + 2 + 2 = 7 correct of 10 -> 30 % error.
  # Hungarian: best one-to-one is (0,c0)=3, (1,c2)=2, (2,c1)=2 -> 7 -> 30 %.
  labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
  clusters = np.array([0, 0, 0, 1, 1, 1, 2, 2, 1, 1])
  np.testing.assert_array_equal(
      metrics.contingency_matrix(labels, clusters),
      [[3, 1, 0], [0, 2, 2], [0, 2, 0]])
  scores = metrics.clustering_scores(labels, clusters)
  assert scores['test_error_majority'] == pytest.approx(30.0)
  assert scores['test_error_hungarian'] == pytest.approx(30.0)
  assert metrics.hungarian_mapping(labels, clusters) == {0: 0, 1: 2, 2: 1}


def test_hand_computed_errors_differ():
  # Contingency (rows = labels, cols = clusters):
  #            c0  c1  c2
  #   label 0   4   0   2
  #   label 1   3   1   0
  # Majority: c0 -> 0, c1 -> 1, c2 -> 0: 4 + 1 + 2 = 7 of 10 -> 30 % error.
  # Hungarian: only two labels, so one cluster is left unmatched; the best
  # pairs score 4 + 1 (or 2 + 3) = 5 of 10 -> 50 % error.
  labels = np.array([0] * 4 + [1] * 3 + [1] + [0] * 2)
  clusters = np.array([0] * 4 + [0] * 3 + [1] + [2] * 2)
  scores = metrics.clustering_scores(labels, clusters)
  assert scores['test_error_majority'] == pytest.approx(30.0)
  assert scores['test_error_hungarian'] == pytest.approx(50.0)
  assert scores['num_clusters_used'] == 3


def test_more_clusters_than_classes():
  # 10 classes, each split evenly into clusters 2k and 2k + 1: purity is
  # perfect, but a one-to-one matching can only credit one half per class.
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(10), 20)
  clusters = 2 * labels + np.tile(np.repeat([0, 1], 10), 10)
  order = rng.permutation(labels.size)
  scores = metrics.clustering_scores(
      labels[order], clusters[order], num_clusters=20)
  assert scores['test_error_majority'] == pytest.approx(0.0)
  assert scores['test_error_hungarian'] == pytest.approx(50.0)
  assert scores['num_clusters_used'] == 20
  # Unmatched surplus clusters are absent from the mapping.
  mapping = metrics.hungarian_mapping(labels[order], clusters[order])
  assert len(mapping) == 10
  assert all(mapping[c] == c // 2 for c in mapping)


@pytest.mark.parametrize('seed', [0, 3])
def test_hungarian_mapping_recovers_permutation(seed):
  labels = np.random.default_rng(1).integers(0, 10, size=300)
  clusters, permutation = _permuted_clusters(labels, seed)
  # 10 % label noise must not change the optimal matching.
  noisy = clusters.copy()
  flip = np.random.default_rng(2).random(labels.size) < 0.1
  noisy[flip] = np.random.default_rng(3).integers(0, 10, size=flip.sum())
  expected = {int(permutation[label]): label for label in range(10)}
  assert metrics.hungarian_mapping(labels, clusters) == expected
  assert metrics.hungarian_mapping(labels, noisy) == expected


def test_contingency_matrix_fixed_size_keeps_empty_columns():
  counts = metrics.contingency_matrix(
      np.array([0, 1]), np.array([0, 0]), num_labels=3, num_clusters=4)
  np.testing.assert_array_equal(counts, [[1, 0, 0, 0], [1, 0, 0, 0],
                                         [0, 0, 0, 0]])


@pytest.mark.parametrize(
    'labels, clusters, kwargs, match',
    [
        (np.array([0, 1]), np.array([0, 1, 1]), {}, 'same length'),
        (np.array([], dtype=int), np.array([], dtype=int), {}, 'empty'),
        (np.array([[0, 1]]), np.array([[0, 1]]), {}, '1-D'),
        (np.array([0, 1]), np.array([0.0, 1.0]), {}, 'integer dtype'),
        (np.array([0, -1]), np.array([0, 1]), {}, 'non-negative'),
        (np.array([0, 1]), np.array([0, 5]), {'num_clusters': 3},
         'num_clusters'),
    ])
def test_clustering_scores_rejects_bad_input(labels, clusters, kwargs, match):
  with pytest.raises(ValueError, match=match):
    metrics.clustering_scores(labels, clusters, **kwargs)


def test_hungarian_mapping_rejects_mismatched_lengths():
  with pytest.raises(ValueError, match='same length'):
    metrics.hungarian_mapping(np.array([0, 1, 2]), np.array([0, 1]))


# -----------------------------------------------------------------------------
# Frechet distance.
# -----------------------------------------------------------------------------


def test_feature_moments_float64_and_values():
  features = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]], dtype=np.float32)
  mu, sigma = metrics.feature_moments(features)
  assert mu.dtype == np.float64 and sigma.dtype == np.float64
  np.testing.assert_allclose(mu, [2.0, 4.0])
  np.testing.assert_allclose(sigma, np.cov(features.astype(np.float64).T))


def test_feature_moments_single_feature_is_2d():
  _, sigma = metrics.feature_moments(np.array([[1.0], [3.0]]))
  assert sigma.shape == (1, 1)
  np.testing.assert_allclose(sigma, [[2.0]])


def test_frechet_distance_of_set_with_itself_is_zero():
  features = np.random.default_rng(0).normal(size=(200, 8))
  assert metrics.frechet_distance(features, features) == pytest.approx(
      0.0, abs=1e-8)


def test_frechet_distance_with_fewer_samples_than_dims():
  # Singular covariances (rank 9 in 16-D) take the eps-offset path.
  features = np.random.default_rng(0).normal(size=(10, 16))
  distance = metrics.frechet_distance(features, features)
  assert np.isfinite(distance)
  assert distance == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize('dim', [1, 3, 6])
def test_frechet_distance_diagonal_closed_form(dim):
  rng = np.random.default_rng(dim)
  mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
  s1, s2 = rng.uniform(0.1, 3.0, size=dim), rng.uniform(0.1, 3.0, size=dim)
  expected = (np.sum((mu1 - mu2) ** 2)
              + np.sum(s1 + s2 - 2.0 * np.sqrt(s1 * s2)))
  actual = metrics.frechet_distance_from_moments(
      mu1, np.diag(s1), mu2, np.diag(s2))
  assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_frechet_distance_full_covariance_commuting_closed_form():
  # Covariances sharing eigenvectors commute, so (S1 S2)^(1/2) has
  # eigenvalues sqrt(a_i b_i) and the trace term is known in closed form.
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
  a, b = rng.uniform(0.5, 2.0, size=4), rng.uniform(0.5, 2.0, size=4)
  sigma1, sigma2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
  mu1, mu2 = np.zeros(4), np.ones(4)
  expected = 4.0 + np.sum(a + b - 2.0 * np.sqrt(a * b))
  actual = metrics.frechet_distance_from_moments(mu1, sigma1, mu2, sigma2)
  assert actual == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_symmetric_and_non_negative():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(100, 5))
  b = rng.normal(loc=0.5, scale=2.0, size=(80, 5))
  d_ab = metrics.frechet_distance(a, b)
  d_ba = metrics.frechet_distance(b, a)
  assert d_ab > 0.0
  assert d_ab == pytest.approx(d_ba, rel=1e-8)


def test_frechet_distance_matches_sample_moments():
  # Large samples from known Gaussians approach the population value.
  rng = np.random.default_rng(0)
  a = rng.normal(loc=0.0, scale=1.0, size=(20_000, 2))
  b = rng.normal(loc=1.0, scale=2.0, size=(20_000, 2))
  # ||mu||^2 = 2; per dim 1 + 4 - 2 * 2 = 1 -> total 4.
  assert metrics.frechet_distance(a, b) == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize(
    'a_shape, b_shape, match',
    [
        ((10, 3), (10, 4), 'same feature dimension'),
        ((10,), (10, 3), '2-D'),
        ((1, 3), (10, 3), 'at least 2 rows'),
        ((0, 3), (10, 3), 'at least 2 rows'),
    ])
def test_frechet_distance_rejects_bad_input(a_shape, b_shape, match):
  with pytest.raises(ValueError, match=match):
    metrics.frechet_distance(np.zeros(a_shape), np.ones(b_shape))


def test_frechet_distance_from_moments_rejects_bad_shapes():
  with pytest.raises(ValueError, match='mu1 and mu2'):
    metrics.frechet_distance_from_moments(
        np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
  with pytest.raises(ValueError, match='sigma2'):
    metrics.frechet_distance_from_moments(
        np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))


# -----------------------------------------------------------------------------
# Accuracy.
# -----------------------------------------------------------------------------


def test_label_accuracy():
  true = np.array([0, 1, 2, 3])
  predicted = np.array([0, 1, 0, 0])
  assert metrics.label_accuracy(true, predicted) == {'accuracy': 50.0}
  mask = np.array([1, 1, 1, 0], dtype=bool)
  assert metrics.label_accuracy(true, predicted, mask=mask)[
      'accuracy'] == pytest.approx(200.0 / 3.0)


def test_label_accuracy_with_hungarian_mapping():
  labels = np.array([0, 0, 1, 1, 2, 2])
  clusters = np.array([5, 5, 3, 3, 4, 3])
  mapping = metrics.hungarian_mapping(labels, clusters)
  predicted = np.array([mapping[c] for c in clusters])
  assert metrics.label_accuracy(labels, predicted)['accuracy'] == (
      pytest.approx(100.0 * 5 / 6))


def test_label_accuracy_rejects_bad_input():
  with pytest.raises(ValueError, match='same length'):
    metrics.label_accuracy(np.array([0, 1]), np.array([0]))
  with pytest.raises(ValueError, match='empty'):
    metrics.label_accuracy(np.array([], dtype=int), np.array([], dtype=int))
  with pytest.raises(ValueError, match='no examples'):
    metrics.label_accuracy(np.array([0]), np.array([0]), mask=np.array([0]))
