"""Evaluation metric cores: pure numpy functions on host arrays.

The layout follows disentanglement_lib: each metric is a plain function of
numpy arrays that returns a flat `dict[str, float]`, so that the training loop
can merge the results of several metrics into one summary dict and log it
without knowing which metric produced which key. Nothing here touches JAX:
metrics run on host copies of model outputs, after `jax.device_get`, so they
are easy to test against hand-computed oracles and never trigger compilation.

Small helpers that other modules reuse (`contingency_matrix`,
`hungarian_mapping`, `feature_moments`) return arrays or mappings instead.

Every function validates its inputs and raises `ValueError` with a message
naming the offending argument, because a silently broadcast shape mismatch
here would produce a plausible-looking but wrong number in a paper table.
"""

import warnings

import numpy as np
import scipy.linalg
import scipy.optimize
import sklearn.metrics


def _as_1d_int_array(values: np.ndarray, name: str) -> np.ndarray:
  """Returns `values` as a non-empty 1-D int64 array of non-negative ids."""
  values = np.asarray(values)
  if values.ndim != 1:
    raise ValueError(
        f'{name} must be a 1-D array of ids, got shape {values.shape}.')
  if values.size == 0:
    raise ValueError(f'{name} must not be empty.')
  if values.dtype == bool or not np.issubdtype(values.dtype, np.integer):
    # Float ids usually mean logits or probabilities were passed by mistake
    # instead of their argmax; refusing them is cheaper than debugging a
    # nonsense error rate later.
    raise ValueError(
        f'{name} must have an integer dtype, got {values.dtype}.')
  if np.any(values < 0):
    raise ValueError(
        f'{name} must be non-negative ids, got min {values.min()}.')
  return values.astype(np.int64)


def _check_same_length(a: np.ndarray, a_name: str,
                       b: np.ndarray, b_name: str) -> None:
  if a.shape[0] != b.shape[0]:
    raise ValueError(
        f'{a_name} and {b_name} must have the same length, '
        f'got {a.shape[0]} and {b.shape[0]}.')


def _as_mask(mask: np.ndarray | None, num_examples: int) -> np.ndarray:
  """Returns a boolean [num_examples] mask; `None` means all examples valid."""
  if mask is None:
    return np.ones((num_examples,), dtype=bool)
  mask = np.asarray(mask)
  if mask.ndim != 1 or mask.shape[0] != num_examples:
    raise ValueError(
        f'mask must have shape ({num_examples},), got {mask.shape}.')
  if not np.all((mask == 0) | (mask == 1)):
    # The eval pipeline pads the last batch and marks padding with 0; any
    # other value means the mask was built wrongly (e.g. a weight vector).
    raise ValueError('mask must contain only 0/1 (or boolean) values.')
  mask = mask.astype(bool)
  if not mask.any():
    raise ValueError('mask selects no examples; nothing to evaluate.')
  return mask


# -----------------------------------------------------------------------------
# Clustering.
# -----------------------------------------------------------------------------


def contingency_matrix(
    labels: np.ndarray,
    clusters: np.ndarray,
    num_labels: int | None = None,
    num_clusters: int | None = None,
) -> np.ndarray:
  """Counts how often each (label, cluster) pair occurs.

  The matrix is indexed by the raw ids, so `counts[l, c]` is the number of
  examples with label `l` assigned to cluster `c`. Ids that never occur give
  all-zero rows/columns, which leave every score below unchanged.

  Args:
    labels: [N] non-negative integer ground-truth class ids.
    clusters: [N] non-negative integer cluster ids (e.g. argmax of the
      categorical code).
    num_labels: number of rows; defaults to `labels.max() + 1`.
    num_clusters: number of columns; defaults to `clusters.max() + 1`. Passing
      the model's code size keeps the matrix shape fixed across eval steps even
      when some clusters are empty.

  Returns:
    [num_labels, num_clusters] int64 matrix of counts.

  Raises:
    ValueError: on wrong ranks, empty or mismatched inputs, negative ids, or ids
      that do not fit in the requested number of rows/columns.
  """
  labels = _as_1d_int_array(labels, 'labels')
  clusters = _as_1d_int_array(clusters, 'clusters')
  _check_same_length(labels, 'labels', clusters, 'clusters')
  if num_labels is None:
    num_labels = int(labels.max()) + 1
  elif labels.max() >= num_labels:
    raise ValueError(
        f'labels contain id {labels.max()} but num_labels={num_labels}.')
  if num_clusters is None:
    num_clusters = int(clusters.max()) + 1
  elif clusters.max() >= num_clusters:
    raise ValueError(
        f'clusters contain id {clusters.max()} but '
        f'num_clusters={num_clusters}.')
  counts = np.zeros((num_labels, num_clusters), dtype=np.int64)
  # `np.add.at` accumulates repeated index pairs, unlike fancy-index `+=`.
  np.add.at(counts, (labels, clusters), 1)
  return counts


def _hungarian_pairs(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Max-weight one-to-one (label, cluster) matching on non-empty ids only.

  Empty rows/columns are dropped first: they contribute nothing to the matched
  count, and keeping them could pair a real cluster's label with a cluster
  that never occurs, which would make `hungarian_mapping` report spurious
  entries.
  """
  label_ids = np.flatnonzero(counts.sum(axis=1))
  cluster_ids = np.flatnonzero(counts.sum(axis=0))
  sub = counts[np.ix_(label_ids, cluster_ids)]
  rows, cols = scipy.optimize.linear_sum_assignment(sub, maximize=True)
  return label_ids[rows], cluster_ids[cols]


def hungarian_mapping(
    labels: np.ndarray, clusters: np.ndarray) -> dict[int, int]:
  """Maps each cluster id to a label with a one-to-one optimal assignment.

  Used to name the values of a generator's categorical code by digit class
  (e.g. to order the rows of a samples figure), and by
  `clustering_scores['test_error_hungarian']`.

  Args:
    labels: [N] non-negative integer ground-truth class ids.
    clusters: [N] non-negative integer cluster ids.

  Returns:
    `{cluster_id: label}` for every cluster that occurs in `clusters` and was
    matched. With more occurring clusters than labels, the surplus clusters
    have no partner under a one-to-one matching and are absent from the dict.

  Raises:
    ValueError: see `contingency_matrix`.
  """
  counts = contingency_matrix(labels, clusters)
  label_ids, cluster_ids = _hungarian_pairs(counts)
  return {int(c): int(l) for l, c in zip(label_ids, cluster_ids)}


def clustering_scores(
    labels: np.ndarray,
    clusters: np.ndarray,
    num_clusters: int | None = None,
) -> dict[str, float]:
  """Unsupervised clustering accuracy of `clusters` against `labels`.

  Two error conventions are reported because the literature uses both:
  the AAE / InfoGAN papers map each cluster to its majority class (which
  rewards over-clustering), whereas the Hungarian (one-to-one) error penalises
  using more clusters than there are classes.

  Args:
    labels: [N] non-negative integer ground-truth class ids.
    clusters: [N] non-negative integer cluster ids.
    num_clusters: optional number of cluster ids the model can emit; only used
      to validate `clusters` (ids must be < num_clusters).

  Returns:
    A dict with
      * `test_error_hungarian`: percent of examples misclassified after the
        optimal one-to-one cluster -> label matching; examples in unmatched
        clusters count as errors.
      * `test_error_majority`: percent misclassified when each cluster predicts
        its majority label (= 100 - purity).
      * `nmi`: sklearn `normalized_mutual_info_score` (arithmetic mean).
      * `ari`: sklearn `adjusted_rand_score`.
      * `num_clusters_used`: number of distinct cluster ids that occur.

  Raises:
    ValueError: see `contingency_matrix`.
  """
  counts = contingency_matrix(labels, clusters, num_clusters=num_clusters)
  total = counts.sum()

  label_ids, cluster_ids = _hungarian_pairs(counts)
  matched = counts[label_ids, cluster_ids].sum()
  majority = counts.max(axis=0).sum()

  # `contingency_matrix` has validated both arrays, so sklearn can take them
  # as they are.
  return {
      'test_error_hungarian': float(100.0 * (1.0 - matched / total)),
      'test_error_majority': float(100.0 * (1.0 - majority / total)),
      'nmi': float(sklearn.metrics.normalized_mutual_info_score(
          labels, clusters)),
      'ari': float(sklearn.metrics.adjusted_rand_score(labels, clusters)),
      'num_clusters_used': float(np.count_nonzero(counts.sum(axis=0))),
  }


# -----------------------------------------------------------------------------
# Frechet distance (FID core).
# -----------------------------------------------------------------------------


def feature_moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and (unbiased) covariance of a set of feature vectors.

  Computed in float64 regardless of the input dtype: the covariance of
  float32 network activations loses enough precision to move FID in the
  first decimal, which is the precision papers report.

  Args:
    features: [N, D] array, N >= 2.

  Returns:
    `(mu, sigma)` with shapes [D] and [D, D], float64.

  Raises:
    ValueError: if `features` is not 2-D or has fewer than two rows.
  """
  features = np.asarray(features, dtype=np.float64)
  if features.ndim != 2:
    raise ValueError(
        f'features must be a 2-D [N, D] array, got shape {features.shape}.')
  if features.shape[0] < 2:
    raise ValueError(
        'features needs at least 2 rows to estimate a covariance, '
        f'got {features.shape[0]}.')
  if features.shape[1] == 0:
    raise ValueError('features must have at least one column.')
  mu = features.mean(axis=0)
  # `atleast_2d` because np.cov returns a 0-d array when D == 1.
  sigma = np.atleast_2d(np.cov(features, rowvar=False))
  return mu, sigma


def frechet_distance_from_moments(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
) -> float:
  """Frechet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

  d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)),
  following the numerics of the TF-GAN / pytorch-fid reference so that values
  are comparable with published FIDs.

  Args:
    mu1: [D] mean of the first distribution.
    sigma1: [D, D] covariance of the first distribution.
    mu2: [D] mean of the second distribution.
    sigma2: [D, D] covariance of the second distribution.
    eps: diagonal offset added to both covariances if the matrix square root
      of their product is not finite (singular product, e.g. fewer samples
      than feature dimensions).

  Returns:
    The (squared) Frechet distance as a non-negative float.

  Raises:
    ValueError: on shape mismatches, or if the square root has a significant
      imaginary part (a sign of badly conditioned covariances).
  """
  mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
  mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
  if mu1.ndim != 1 or mu1.shape != mu2.shape:
    raise ValueError(
        f'mu1 and mu2 must be 1-D of equal length, got {mu1.shape} and '
        f'{mu2.shape}.')
  dim = mu1.shape[0]
  for name, sigma in (('sigma1', sigma1), ('sigma2', sigma2)):
    if sigma.shape != (dim, dim):
      raise ValueError(
          f'{name} must have shape ({dim}, {dim}), got {sigma.shape}.')

  diff = mu1 - mu2
  with warnings.catch_warnings():
    # sqrtm warns on singular input; that case is handled just below by the
    # eps offset, so the warning would only be noise in training logs.
    warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
      offset = np.eye(dim) * eps
      covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))

  # sqrtm of a product of two PSD matrices is real in exact arithmetic; small
  # imaginary parts are round-off. Large ones mean the result is meaningless.
  if np.iscomplexobj(covmean):
    max_imag = np.max(np.abs(np.diagonal(covmean).imag))
    if max_imag > 1e-3:
      raise ValueError(
          f'Matrix square root has imaginary component {max_imag:.3g}; the '
          'covariances are too badly conditioned for a Frechet distance.')
    covmean = covmean.real

  distance = (diff @ diff + np.trace(sigma1) + np.trace(sigma2)
              - 2.0 * np.trace(covmean))
  # Mathematically >= 0; clamp round-off (e.g. a set against itself gives
  # -1e-13) so downstream log-scale plots and `>= 0` assertions hold.
  return float(max(distance, 0.0))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Frechet distance between Gaussians fitted to two feature sets.

  This is the FID formula when the features are Inception pool activations;
  the feature extractor is deliberately not part of this module.

  Args:
    features_a: [N, D] features of the first set (N >= 2).
    features_b: [M, D] features of the second set (M >= 2).

  Returns:
    The Frechet distance as a non-negative float.

  Raises:
    ValueError: on wrong ranks, too few rows or differing feature dimensions.
  """
  features_a = np.asarray(features_a)
  features_b = np.asarray(features_b)
  if (features_a.ndim == 2 and features_b.ndim == 2
      and features_a.shape[1] != features_b.shape[1]):
    raise ValueError(
        'features_a and features_b must have the same feature dimension, '
        f'got {features_a.shape[1]} and {features_b.shape[1]}.')
  mu1, sigma1 = feature_moments(features_a)
  mu2, sigma2 = feature_moments(features_b)
  return frechet_distance_from_moments(mu1, sigma1, mu2, sigma2)


# -----------------------------------------------------------------------------
# Classification.
# -----------------------------------------------------------------------------


def label_accuracy(
    true_labels: np.ndarray,
    predicted_labels: np.ndarray,
    mask: np.ndarray | None = None,
) -> dict[str, float]:
  """Classification accuracy in percent over valid examples.

  Args:
    true_labels: [N] integer class ids.
    predicted_labels: [N] integer class ids (e.g. mapped through
      `hungarian_mapping`).
    mask: optional [N] 0/1 array; 0 marks padding examples to ignore.

  Returns:
    `{'accuracy': percent}`.

  Raises:
    ValueError: on wrong ranks, empty or mismatched inputs, or an all-zero mask.
  """
  true_labels = _as_1d_int_array(true_labels, 'true_labels')
  predicted_labels = _as_1d_int_array(predicted_labels, 'predicted_labels')
  _check_same_length(true_labels, 'true_labels',
                     predicted_labels, 'predicted_labels')
  valid = _as_mask(mask, true_labels.shape[0])
  correct = true_labels[valid] == predicted_labels[valid]
  return {'accuracy': float(100.0 * correct.mean())}



# -----------------------------------------------------------------------------
# Latent-space diagnostics: does G match the encoder, does the latent cluster?
# -----------------------------------------------------------------------------


def _pairwise_sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """[len(a), len(b)] squared Euclidean distances (float64, clipped at 0)."""
  d = (np.sum(a * a, axis=1)[:, None] - 2.0 * a @ b.T + np.sum(b * b, axis=1)[None, :])
  return np.maximum(d, 0.0)


def _kth_neighbour_radii(points: np.ndarray, k: int, chunk: int) -> np.ndarray:
  """Distance of each point to its k-th nearest other point."""
  radii = np.empty(len(points))
  for start in range(0, len(points), chunk):
    d = _pairwise_sq_distances(points[start:start + chunk], points)
    # Column k of the sorted row: column 0 is the point itself (distance 0).
    radii[start:start + chunk] = np.sqrt(np.partition(d, k, axis=1)[:, k])
  return radii


def _fraction_covered(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray,
                      chunk: int) -> float:
  """Fraction of `queries` inside at least one ball (centres[i], radii[i])."""
  inside = 0
  for start in range(0, len(queries), chunk):
    d = np.sqrt(_pairwise_sq_distances(queries[start:start + chunk], centres))
    inside += int(np.count_nonzero(np.any(d <= radii[None, :], axis=1)))
  return inside / len(queries)


def knn_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3,
                         chunk: int = 1024) -> dict[str, float]:
  """Improved precision and recall (Kynkaanniemi et al. 2019) of `fake` against `real`.

  Each set's manifold is the union of balls around its points with radius the
  distance to the point's k-th nearest neighbour in the same set. Precision
  is the fraction of fake points inside the real manifold (are samples
  realistic?), recall the fraction of real points inside the fake manifold
  (is all of the data covered?).

  Args:
    real: [N, D] points (N > k).
    fake: [M, D] points (M > k).
    k: the neighbour that sets the radii (3 in the paper).
    chunk: rows per distance block (memory is chunk * max(N, M) floats).

  Returns:
    {'precision': float in [0, 1], 'recall': float in [0, 1]}.
  """
  real = np.asarray(real, np.float64)
  fake = np.asarray(fake, np.float64)
  for name, x in (('real', real), ('fake', fake)):
    if x.ndim != 2 or len(x) <= k:
      raise ValueError(f'{name} must be [points > k={k}, dims], got shape {x.shape}.')
  if real.shape[1] != fake.shape[1]:
    raise ValueError(f'real and fake differ in dimension: {real.shape[1]} vs {fake.shape[1]}.')
  real_radii = _kth_neighbour_radii(real, k, chunk)
  fake_radii = _kth_neighbour_radii(fake, k, chunk)
  return {'precision': _fraction_covered(fake, real, real_radii, chunk),
          'recall': _fraction_covered(real, fake, fake_radii, chunk)}


def latent_clustering_ceiling(train_points: np.ndarray, test_points: np.ndarray,
                              test_labels: np.ndarray, num_clusters: int, seed: int = 0,
                              max_fit_points: int = 20_000) -> dict[str, float]:
  """How well the representation itself clusters, without any GAN.

  k-means and a full-covariance Gaussian mixture with `num_clusters`
  components are fitted on (at most `max_fit_points` of) `train_points` and
  assign `test_points`; each is scored by the Hungarian error against
  `test_labels`. If these are high, no latent GAN can make Q classify well;
  if they are low and Q's error is high, the GAN is at fault.

  Returns:
    {'kmeans_error': percent, 'gmm_error': percent}.
  """
  import sklearn.cluster  # pylint: disable=g-import-not-at-top
  import sklearn.mixture  # pylint: disable=g-import-not-at-top
  train_points = np.asarray(train_points, np.float64)
  test_points = np.asarray(test_points, np.float64)
  if train_points.ndim != 2 or test_points.ndim != 2:
    raise ValueError('train_points and test_points must be [points, dims].')
  rng = np.random.default_rng(seed)
  if len(train_points) > max_fit_points:
    train_points = train_points[rng.choice(len(train_points), max_fit_points, replace=False)]
  kmeans = sklearn.cluster.KMeans(num_clusters, n_init=3, random_state=seed).fit(train_points)
  gmm = sklearn.mixture.GaussianMixture(num_clusters, covariance_type='full', reg_covar=1e-4,
                                        random_state=seed).fit(train_points)
  error = lambda clusters: clustering_scores(test_labels, clusters)['test_error_hungarian']
  return {'kmeans_error': error(kmeans.predict(test_points)),
          'gmm_error': error(gmm.predict(test_points))}


def neighbour_label_agreement(points: np.ndarray, labels: np.ndarray, k: int = 10,
                              chunk: int = 1024) -> float:
  """Fraction of each point's k nearest other points (Euclidean) that share its label.

  The upper bound on what a neighbour-consistency objective can learn from a
  representation: at 1.0 every neighbourhood is one class, at 1/num_classes
  (balanced classes) the neighbourhoods say nothing about the class.
  """
  points = np.asarray(points, np.float64)
  labels = _as_1d_int_array(labels, 'labels')
  _check_same_length(points, 'points', labels, 'labels')
  if points.ndim != 2 or not 0 < k < len(points):
    raise ValueError(f'points must be [N > k={k}, dims], got shape {points.shape}.')
  agree = 0
  for start in range(0, len(points), chunk):
    d = _pairwise_sq_distances(points[start:start + chunk], points)
    rows = np.arange(d.shape[0])
    d[rows, start + rows] = np.inf   # not its own neighbour.
    nearest = np.argpartition(d, k, axis=1)[:, :k]
    agree += int(np.count_nonzero(labels[nearest] == labels[start:start + chunk, None]))
  return agree / (len(points) * k)


def class_unit_sums(images: np.ndarray, categories: np.ndarray,
                    num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """Per class, the sum of the images' unit vectors and their number (Eq. 5's pieces).

  Images are read in [0, 1] ((x + 1) / 2, the paper's pixel range): in
  lgae's [-1, 1] every digit shares a background of -1s, and the cosine of
  any two images would be near 1. Sums over batches add up, so a caller can
  stream the generated images.

  Args:
    images: [N, H, W, C] in [-1, 1].
    categories: [N] int class of each image.
    num_classes: K.

  Returns:
    (sums [K, H * W * C], counts [K]), float64.
  """
  x = (np.asarray(images, np.float64).reshape(len(images), -1) + 1.0) / 2.0
  norms = np.linalg.norm(x, axis=1, keepdims=True)
  # An all-black image has no direction; it adds a zero vector but counts.
  units = x / np.where(norms > 0, norms, 1.0)
  one_hot = np.eye(num_classes)[np.asarray(categories)]
  return one_hot.T @ units, one_hot.sum(axis=0)


def mean_pairwise_cosine(sums: np.ndarray, counts: np.ndarray) -> float:
  """Eq. 5 averaged over pairs of distinct images of one class, then over classes.

  For unit vectors u_i of one class, sum_{i != j} u_i . u_j = ||sum_i u_i||^2
  - n (with n unit vectors), so the mean over the n (n - 1) ordered pairs
  needs only the sums. Classes with fewer than two images are left out; nan
  if none has two.
  """
  sums, counts = np.asarray(sums, np.float64), np.asarray(counts, np.float64)
  keep = counts >= 2
  if not np.any(keep):
    return float('nan')
  pairs = np.sum(np.square(sums[keep]), axis=1) - counts[keep]
  return float(np.mean(pairs / (counts[keep] * (counts[keep] - 1))))
