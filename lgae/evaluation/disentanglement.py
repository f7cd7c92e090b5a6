"""Disentanglement metric cores: pure numpy / scikit-learn functions on host arrays.

The five standard scores of a representation against discrete ground-truth factors
(e.g. dSprites' shape / scale / orientation / x / y class indices), in the shape of
disentanglement_lib (Locatello et al. 2019) but without its ground-truth-data and sampler
objects: every metric takes

  representations: float [num_points, num_dims] codes (e.g. encoder means),
  factors: int [num_points, num_factors] factor classes of the same points,
  rng: a `np.random.Generator` (only metrics that sample need one),

plus keyword arguments whose defaults are the published protocols' sample sizes (those
of disentanglement_lib's `unsupervised_study_v1` metric configs), and returns a flat
`dict[str, float]`, like `lgae.evaluation.metrics`.

* BetaVAE score (Higgins et al. 2017, "beta-VAE: Learning basic visual concepts with a
  constrained variational framework"): can a linear classifier tell which factor was held
  fixed from the mean absolute code difference of pairs that share that factor?
  batch_size=64 pairs per example, 10000 training and 5000 evaluation examples.
* FactorVAE score (Kim & Mnih 2018, "Disentangling by factorising"): when one factor is
  held fixed, is the code dimension with the smallest normalised variance always the same
  one for that factor? Majority-vote classifier; batch_size=64, 10000 / 5000 votes, global
  scales from 10000 points, dimensions with std < 0.05 pruned.
* MIG (Chen et al. 2018, "Isolating sources of disentanglement in VAEs"): per factor, the
  gap between the two code dimensions with the largest mutual information with it,
  normalised by the factor's entropy; disentanglement_lib's discretised estimator
  (20 equal-width bins per dimension) on 10000 points.
* DCI (Eastwood & Williams 2018, "A framework for the quantitative evaluation of
  disentangled representations"): gradient-boosted-tree importances of each dimension for
  each factor give disentanglement (each dimension informs one factor) and completeness
  (each factor is captured by one dimension); informativeness is the trees' test accuracy.
  10000 training and 5000 test points.
* SAP (Kumar et al. 2018, "Variational inference of disentangled latent concepts from
  unlabeled observations"): per factor, the gap between the two best single-dimension
  linear classifiers' test accuracies. 10000 training and 5000 test points.

disentanglement_lib samples fresh factors from a simulator; here the points are a fixed
set, so "draw points" means "draw rows". That is exact when the rows are the full factor
grid or a uniform sample of it (dSprites' 737280 images are the full grid), and otherwise
measures the metric under the empirical factor distribution of the rows given.

Two deliberate departures from disentanglement_lib, both fixing bugs there: FactorVAE
votes name the voting dimension by its index in the full code (disentanglement_lib uses
its index among the active dimensions, which mislabels votes once any dimension is
pruned), and `num_active_dims` counts the active dimensions (disentanglement_lib reports
the code size).

Every function validates its inputs and raises `ValueError` with a message naming the
offending argument: a silently broadcast shape or a constant factor would otherwise give
a plausible-looking but meaningless number in a paper table.

The module is also the evaluation's disentanglement score family (`KEYS`, `scores`; see
`lgae.evaluation.outputs`): for datasets with ground-truth factors, `representation_scores`
of the method's representation of the eval split against its factors.
"""

from typing import TYPE_CHECKING

import numpy as np
import scipy.special
import sklearn.ensemble
import sklearn.linear_model
import sklearn.metrics
import sklearn.svm

if TYPE_CHECKING:  # Only for the annotation of `scores`: the cores need no JAX.
  from lgae.evaluation import outputs as outputs_lib

# Floats per gathered block of [examples, batch, dims] codes in the sampling metrics:
# 2**22 float64 values is 32 MB, so the published 10000 x 64 draws never need 5 GB at once.
_MAX_GATHER = 2**22


# -----------------------------------------------------------------------------
# Validation and sampling helpers.
# -----------------------------------------------------------------------------


def _check_arrays(representations: np.ndarray, factors: np.ndarray,
                  min_points: int = 2) -> tuple[np.ndarray, np.ndarray]:
  """Returns (float64 [N, D] codes, int64 [N, K] factors) after checking them."""
  representations = np.asarray(representations)
  factors = np.asarray(factors)
  if representations.ndim != 2:
    raise ValueError('representations must be a 2-D [num_points, num_dims] array, '
                     f'got shape {representations.shape}.')
  if factors.ndim != 2:
    raise ValueError('factors must be a 2-D [num_points, num_factors] array, '
                     f'got shape {factors.shape}.')
  if representations.shape[0] != factors.shape[0]:
    raise ValueError('representations and factors must have the same number of points, '
                     f'got {representations.shape[0]} and {factors.shape[0]}.')
  if representations.shape[1] == 0 or factors.shape[1] == 0:
    raise ValueError('representations and factors need at least one column each, got '
                     f'shapes {representations.shape} and {factors.shape}.')
  if representations.shape[0] < min_points:
    raise ValueError(f'need at least {min_points} points, got {representations.shape[0]}.')
  if factors.dtype == bool or not np.issubdtype(factors.dtype, np.integer):
    # Float factors usually mean continuous latents (e.g. dSprites' latents_values)
    # were passed instead of the class indices (latents_classes).
    raise ValueError(f'factors must hold integer class indices, got dtype {factors.dtype}.')
  if not np.issubdtype(representations.dtype, np.number) or representations.dtype == bool:
    raise ValueError(f'representations must be numeric, got dtype {representations.dtype}.')
  representations = representations.astype(np.float64)
  if not np.isfinite(representations).all():
    raise ValueError('representations contain NaN or infinite values.')
  return representations, factors.astype(np.int64)


def _check_rng(rng: np.random.Generator) -> None:
  if not isinstance(rng, np.random.Generator):
    # A legacy RandomState or an int seed would draw a different stream from the one the
    # docstrings promise; refusing it keeps runs reproducible.
    raise ValueError(f'rng must be a np.random.Generator, got {type(rng).__name__}.')


def _check_positive(**sizes: int) -> None:
  for name, value in sizes.items():
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f'{name} must be a positive integer, got {value!r}.')


def _check_varying_factors(factors: np.ndarray, where: str) -> None:
  """Raises unless every factor column takes at least two values."""
  for k in range(factors.shape[1]):
    if np.all(factors[:, k] == factors[0, k]):
      # A constant factor cannot be predicted or told apart; drop it (disentanglement_lib
      # does so for dSprites' single colour) rather than report a score for it.
      raise ValueError(f'factor {k} is constant in {where}; every factor needs at least two '
                       'values (drop constant factor columns).')


def _seed(rng: np.random.Generator) -> int:
  """An int seed for scikit-learn estimators, drawn from `rng`."""
  return int(rng.integers(2**31 - 1))


def _train_test_split(num_points: int, num_train: int, num_test: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Disjoint random train / test row indices.

  Disjoint rather than drawn with replacement: with a fixed set of rows, overlapping
  splits would let a classifier score by memorising rows it was trained on.
  """
  if num_train + num_test > num_points:
    raise ValueError(f'need num_train + num_test = {num_train} + {num_test} distinct points, '
                     f'got only {num_points}; pass smaller sizes.')
  rows = rng.choice(num_points, size=num_train + num_test, replace=False)
  return rows[:num_train], rows[num_train:]


class _SameValueSampler:
  """Draws rows that share one factor's value with given anchor rows.

  Rows are grouped by value once per factor (a stable argsort), so a draw is two table
  look-ups instead of a search over all rows.
  """

  def __init__(self, factors: np.ndarray):
    num_points, num_factors = factors.shape
    # order[k] lists the row ids sorted by factor k, so rows sharing a value are contiguous.
    self._order = np.argsort(factors, axis=0, kind='stable').T
    self._start = np.empty((num_factors, num_points), np.int64)
    self._size = np.empty((num_factors, num_points), np.int64)
    for k in range(num_factors):
      values, first, counts = np.unique(
          factors[self._order[k], k], return_index=True, return_counts=True)
      group = np.searchsorted(values, factors[:, k])
      self._start[k] = first[group]
      self._size[k] = counts[group]

  def partners(self, factor_ids: np.ndarray, anchors: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """One uniformly drawn row with anchors[i]'s value of factor factor_ids[i], per i."""
    offsets = rng.integers(0, self._size[factor_ids, anchors])
    return self._order[factor_ids, self._start[factor_ids, anchors] + offsets]


def _chunks(total: int, per_example: int):
  """Yields sizes of consecutive blocks that keep gathered codes under `_MAX_GATHER`."""
  block = max(1, _MAX_GATHER // per_example)
  for start in range(0, total, block):
    yield min(block, total - start)


# -----------------------------------------------------------------------------
# BetaVAE score.
# -----------------------------------------------------------------------------


def _beta_vae_examples(representations: np.ndarray, sampler: _SameValueSampler,
                       num_factors: int, batch_size: int, num_examples: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """[num_examples, D] mean |z1 - z2| features and the [num_examples] fixed factors."""
  num_points, num_dims = representations.shape
  features, labels = [], []
  for block in _chunks(num_examples, batch_size * num_dims):
    fixed = rng.integers(num_factors, size=block)
    # Each pair is a uniform row and a uniform row sharing its value of the fixed factor:
    # on the full grid this is exactly the simulator's "sample two factor vectors, copy
    # the fixed coordinate", with the fixed value drawn by its frequency.
    first = rng.integers(num_points, size=(block, batch_size))
    second = sampler.partners(np.repeat(fixed[:, None], batch_size, axis=1), first, rng)
    features.append(np.abs(representations[first] - representations[second]).mean(axis=1))
    labels.append(fixed)
  return np.concatenate(features), np.concatenate(labels)


def beta_vae_score(representations: np.ndarray, factors: np.ndarray,
                   rng: np.random.Generator, *, batch_size: int = 64,
                   num_train: int = 10000, num_eval: int = 5000) -> dict[str, float]:
  """BetaVAE disentanglement score (Higgins et al. 2017), as in disentanglement_lib.

  Each example fixes a factor k drawn uniformly, draws `batch_size` pairs of rows that
  share factor k's value (other factors free) and uses the mean over pairs of |z1 - z2|
  as its feature vector; a logistic regression trained on `num_train` examples predicts k,
  and the score is its accuracy on `num_eval` independently drawn examples.

  Approximation: disentanglement_lib samples the pairs from a simulator. Here the first
  row of a pair is drawn uniformly from the given rows and the second uniformly among the
  rows with the same value of factor k, so factor k's value is drawn with its empirical
  frequency. This is exact when the rows are the full factor grid or a uniform sample of
  it, and otherwise follows the rows' empirical factor distribution.

  Args:
    representations: [N, D] codes.
    factors: [N, K] integer factor classes of the same rows; every factor must vary.
    rng: source of all randomness (pair draws and the classifier's seed).
    batch_size: pairs averaged into one example.
    num_train: training examples.
    num_eval: evaluation examples.

  Returns:
    {'beta_vae_score': eval accuracy, 'beta_vae_train_accuracy': train accuracy}, both in
    [0, 1]; chance is about 1 / K.

  Raises:
    ValueError: on malformed arrays, sizes or rng, a constant factor, or a training set
      so small that only one factor was drawn.
  """
  representations, factors = _check_arrays(representations, factors)
  _check_rng(rng)
  _check_positive(batch_size=batch_size, num_train=num_train, num_eval=num_eval)
  _check_varying_factors(factors, 'factors')
  sampler = _SameValueSampler(factors)
  num_factors = factors.shape[1]
  train_x, train_y = _beta_vae_examples(
      representations, sampler, num_factors, batch_size, num_train, rng)
  if np.unique(train_y).size < 2:
    raise ValueError(f'num_train={num_train} examples drew only one factor; use more.')
  eval_x, eval_y = _beta_vae_examples(
      representations, sampler, num_factors, batch_size, num_eval, rng)
  # disentanglement_lib's classifier: scikit-learn's default logistic regression.
  model = sklearn.linear_model.LogisticRegression(random_state=_seed(rng))
  model.fit(train_x, train_y)
  return {'beta_vae_score': float(np.mean(model.predict(eval_x) == eval_y)),
          'beta_vae_train_accuracy': float(np.mean(model.predict(train_x) == train_y))}


# -----------------------------------------------------------------------------
# FactorVAE score.
# -----------------------------------------------------------------------------


def majority_vote_accuracy(train_votes: np.ndarray,
                           eval_votes: np.ndarray) -> dict[str, float]:
  """Train / eval accuracy of the FactorVAE majority-vote classifier.

  The classifier maps each code dimension to the factor it was most often the
  smallest-variance dimension for in `train_votes` (ties go to the lower factor index;
  a dimension that never won predicts factor 0, as in disentanglement_lib). A vote
  (d, k) is correct if dimension d maps to factor k.

  Args:
    train_votes: [D, K] non-negative counts: votes[d, k] = how often dimension d had the
      smallest normalised variance in a batch with factor k fixed.
    eval_votes: [D, K] counts of the evaluation votes.

  Returns:
    {'train_accuracy': float, 'eval_accuracy': float}; 0 for an empty vote table.

  Raises:
    ValueError: if the tables are not equally shaped 2-D non-negative arrays.
  """
  train_votes = np.asarray(train_votes, dtype=np.float64)
  eval_votes = np.asarray(eval_votes, dtype=np.float64)
  if train_votes.ndim != 2 or train_votes.shape != eval_votes.shape:
    raise ValueError('train_votes and eval_votes must be 2-D [num_dims, num_factors] arrays '
                     f'of equal shape, got {train_votes.shape} and {eval_votes.shape}.')
  if (train_votes < 0).any() or (eval_votes < 0).any():
    raise ValueError('vote counts must be non-negative.')
  predicted = np.argmax(train_votes, axis=1)
  dims = np.arange(train_votes.shape[0])

  def accuracy(votes):
    total = votes.sum()
    return float(votes[dims, predicted].sum() / total) if total > 0 else 0.0

  return {'train_accuracy': accuracy(train_votes), 'eval_accuracy': accuracy(eval_votes)}


def _factor_vae_votes(representations: np.ndarray, sampler: _SameValueSampler,
                      num_factors: int, global_std: np.ndarray, active: np.ndarray,
                      batch_size: int, num_votes: int,
                      rng: np.random.Generator) -> np.ndarray:
  """[D, K] table of argmin-normalised-variance votes."""
  num_points = representations.shape[0]
  active_dims = np.flatnonzero(active)
  codes = representations[:, active_dims] / global_std[active_dims]
  votes = np.zeros((representations.shape[1], num_factors), np.int64)
  for block in _chunks(num_votes, batch_size * active_dims.size):
    fixed = rng.integers(num_factors, size=block)
    # The anchor only chooses the fixed value (with its empirical frequency); the batch is
    # then drawn from all rows with that value, like the simulator's free other factors.
    anchors = rng.integers(num_points, size=block)
    members = sampler.partners(np.repeat(fixed[:, None], batch_size, axis=1),
                               np.repeat(anchors[:, None], batch_size, axis=1), rng)
    local_var = np.var(codes[members], axis=1, ddof=1)
    # Vote with the dimension's index in the full code, not among the active ones.
    np.add.at(votes, (active_dims[np.argmin(local_var, axis=1)], fixed), 1)
  return votes


def factor_vae_score(representations: np.ndarray, factors: np.ndarray,
                     rng: np.random.Generator, *, batch_size: int = 64,
                     num_train: int = 10000, num_eval: int = 5000,
                     num_variance_estimate: int = 10000,
                     prune_threshold: float = 0.05) -> dict[str, float]:
  """FactorVAE disentanglement score (Kim & Mnih 2018), as in disentanglement_lib.

  Each dimension's global standard deviation is estimated from `num_variance_estimate`
  rows drawn with replacement; dimensions with std < `prune_threshold` are inactive
  (collapsed to the prior). Each vote fixes a factor k drawn uniformly, draws `batch_size`
  rows sharing one value of factor k, and votes (d, k) for the active dimension d with the
  smallest variance of z_d / std_d over the batch. A majority-vote classifier (see
  `majority_vote_accuracy`) is fitted on `num_train` votes and scored on `num_eval`.

  Approximation: the fixed value is that of a uniformly drawn row and the batch is drawn
  uniformly (with replacement) from the rows with that value; exact on the full factor
  grid or a uniform sample of it (see `beta_vae_score`).

  Args:
    representations: [N, D] codes.
    factors: [N, K] integer factor classes of the same rows; every factor must vary.
    rng: source of all randomness.
    batch_size: rows per vote, at least 2 (the variance uses ddof=1).
    num_train: training votes.
    num_eval: evaluation votes.
    num_variance_estimate: rows used to estimate the global scales.
    prune_threshold: minimum global std of an active dimension.

  Returns:
    {'factor_vae_score': eval accuracy, 'factor_vae_train_accuracy': train accuracy,
     'num_active_dims': number of active dimensions}; both accuracies are 0 when no
    dimension is active.

  Raises:
    ValueError: on malformed arrays, sizes or rng, or a constant factor.
  """
  representations, factors = _check_arrays(representations, factors)
  _check_rng(rng)
  _check_positive(batch_size=batch_size, num_train=num_train, num_eval=num_eval,
                  num_variance_estimate=num_variance_estimate)
  if batch_size < 2:
    raise ValueError(f'batch_size must be at least 2 to estimate a variance, got {batch_size}.')
  if num_variance_estimate < 2:
    raise ValueError('num_variance_estimate must be at least 2, got '
                     f'{num_variance_estimate}.')
  if not np.isfinite(prune_threshold) or prune_threshold < 0:
    raise ValueError(f'prune_threshold must be a non-negative number, got {prune_threshold}.')
  _check_varying_factors(factors, 'factors')
  rows = rng.integers(representations.shape[0], size=num_variance_estimate)
  global_std = np.std(representations[rows], axis=0, ddof=1)
  # `> 0` too, so that prune_threshold=0 cannot divide by a zero scale.
  active = (global_std >= prune_threshold) & (global_std > 0)
  if not active.any():
    return {'factor_vae_score': 0.0, 'factor_vae_train_accuracy': 0.0,
            'num_active_dims': 0.0}
  sampler = _SameValueSampler(factors)
  num_factors = factors.shape[1]
  train_votes = _factor_vae_votes(representations, sampler, num_factors, global_std, active,
                                  batch_size, num_train, rng)
  eval_votes = _factor_vae_votes(representations, sampler, num_factors, global_std, active,
                                 batch_size, num_eval, rng)
  accuracy = majority_vote_accuracy(train_votes, eval_votes)
  return {'factor_vae_score': accuracy['eval_accuracy'],
          'factor_vae_train_accuracy': accuracy['train_accuracy'],
          'num_active_dims': float(np.count_nonzero(active))}


# -----------------------------------------------------------------------------
# Mutual information gap.
# -----------------------------------------------------------------------------


def _histogram_discretise(representations: np.ndarray, num_bins: int) -> np.ndarray:
  """[N, D] bin ids of `num_bins` equal-width bins spanning each dimension's range."""
  codes = np.empty(representations.shape, np.int64)
  for d in range(representations.shape[1]):
    edges = np.histogram_bin_edges(representations[:, d], bins=num_bins)
    # Dropping the last edge puts the maximum into the last bin instead of a bin of its
    # own (disentanglement_lib's convention); a constant dimension becomes one bin.
    codes[:, d] = np.digitize(representations[:, d], edges[:-1])
  return codes


def mig(representations: np.ndarray, factors: np.ndarray, *,
        num_bins: int = 20) -> dict[str, float]:
  """Mutual information gap (Chen et al. 2018), disentanglement_lib's discrete estimator.

  Each dimension is discretised into `num_bins` equal-width bins; I(z_d; v_k) is the
  plug-in mutual information (nats) of the binned dimension and factor k, and H(v_k) the
  factor's plug-in entropy. Per factor the score is (largest - second largest I over
  dimensions) / H(v_k); MIG is the mean over factors. Factors that are constant over the
  given rows (H = 0) carry no information to capture and are skipped. There is no
  sampling: pass the rows to use (the protocol uses 10000 random ones).

  Args:
    representations: [N, D] codes, D >= 2.
    factors: [N, K] integer factor classes of the same rows.
    num_bins: bins per dimension.

  Returns:
    {'mig': float in [0, 1]}.

  Raises:
    ValueError: on malformed arrays, fewer than two dimensions, or if every factor is
      constant.
  """
  representations, factors = _check_arrays(representations, factors)
  _check_positive(num_bins=num_bins)
  if representations.shape[1] < 2:
    raise ValueError('MIG is a gap between the two most informative dimensions, so '
                     f'representations need at least 2 dimensions, got {representations.shape[1]}.')
  codes = _histogram_discretise(representations, num_bins)
  entropy = np.array([sklearn.metrics.mutual_info_score(f, f) for f in factors.T])
  varying = entropy > 0
  if not varying.any():
    raise ValueError('every factor is constant over the given points; MIG is undefined.')
  info = np.array([[sklearn.metrics.mutual_info_score(factors[:, k], codes[:, d])
                    for k in np.flatnonzero(varying)]
                   for d in range(codes.shape[1])])
  top = np.sort(info, axis=0)
  return {'mig': float(np.mean((top[-1] - top[-2]) / entropy[varying]))}


# -----------------------------------------------------------------------------
# DCI: disentanglement, completeness, informativeness.
# -----------------------------------------------------------------------------


def _one_minus_entropy_of_rows(weights: np.ndarray) -> np.ndarray:
  """1 - entropy (base = row length) of each row normalised to a distribution.

  All-zero rows get 0. A row of length 1 gets 1: a distribution over one outcome has zero
  entropy in any base (disentanglement_lib divides by log 1 there and returns NaN).
  """
  totals = weights.sum(axis=1)
  scores = np.zeros(weights.shape[0])
  nonzero = totals > 0
  if weights.shape[1] == 1:
    scores[nonzero] = 1.0
    return scores
  p = weights[nonzero] / totals[nonzero, None]
  scores[nonzero] = 1.0 - scipy.special.entr(p).sum(axis=1) / np.log(weights.shape[1])
  return scores


def dci_from_importance(importance: np.ndarray) -> dict[str, float]:
  """DCI disentanglement and completeness of an importance matrix.

  Disentanglement: each code dimension's importance row, normalised, should put all
  its mass on one factor; score 1 - H_K(row) per dimension, averaged with weights equal to
  the dimension's share of the total importance (so unused dimensions do not count).
  Completeness: each factor's importance column should come from one dimension; score
  1 - H_D(column) per factor, weighted by the factor's share of the total importance.
  Entropies use base K (factors) and D (dimensions) so both scores lie in [0, 1].

  Args:
    importance: [D, K] non-negative importance of dimension d for predicting factor k.

  Returns:
    {'dci_disentanglement': float, 'dci_completeness': float}; both 0 for an all-zero
    matrix (nothing is informative).

  Raises:
    ValueError: if `importance` is not a non-empty 2-D non-negative finite array.
  """
  importance = np.asarray(importance, dtype=np.float64)
  if importance.ndim != 2 or importance.size == 0:
    raise ValueError('importance must be a non-empty 2-D [num_dims, num_factors] array, '
                     f'got shape {importance.shape}.')
  if not np.isfinite(importance).all() or (importance < 0).any():
    raise ValueError('importance must be finite and non-negative.')
  total = importance.sum()
  if total == 0:
    return {'dci_disentanglement': 0.0, 'dci_completeness': 0.0}
  per_dim = _one_minus_entropy_of_rows(importance)
  per_factor = _one_minus_entropy_of_rows(importance.T)
  return {
      'dci_disentanglement': float(per_dim @ (importance.sum(axis=1) / total)),
      'dci_completeness': float(per_factor @ (importance.sum(axis=0) / total)),
  }


def dci(representations: np.ndarray, factors: np.ndarray, rng: np.random.Generator, *,
        num_train: int = 10000, num_test: int = 5000) -> dict[str, float]:
  """DCI scores (Eastwood & Williams 2018), as in disentanglement_lib.

  `num_train` and `num_test` disjoint rows are drawn from the given ones. Per factor, a
  scikit-learn `GradientBoostingClassifier` (default settings) is fitted on the training
  rows; its `feature_importances_` fill the factor's column of the [D, K] importance
  matrix, and its test accuracy the factor's informativeness. See `dci_from_importance`
  for disentanglement and completeness.

  Args:
    representations: [N, D] codes.
    factors: [N, K] integer factor classes of the same rows.
    rng: source of the split and the classifiers' seeds.
    num_train: training rows.
    num_test: test rows; N >= num_train + num_test.

  Returns:
    {'dci_disentanglement', 'dci_completeness', 'dci_informativeness'} as floats in
    [0, 1]; informativeness is the mean test accuracy over factors.

  Raises:
    ValueError: on malformed arrays, sizes or rng, too few rows, or a factor that is
      constant over the training rows.
  """
  representations, factors = _check_arrays(representations, factors)
  _check_rng(rng)
  _check_positive(num_train=num_train, num_test=num_test)
  train, test = _train_test_split(representations.shape[0], num_train, num_test, rng)
  _check_varying_factors(factors[train], 'the DCI training rows')
  num_dims, num_factors = representations.shape[1], factors.shape[1]
  importance = np.zeros((num_dims, num_factors))
  accuracy = np.zeros(num_factors)
  for k in range(num_factors):
    model = sklearn.ensemble.GradientBoostingClassifier(random_state=_seed(rng))
    model.fit(representations[train], factors[train, k])
    importance[:, k] = np.abs(model.feature_importances_)
    accuracy[k] = np.mean(model.predict(representations[test]) == factors[test, k])
  return {**dci_from_importance(importance), 'dci_informativeness': float(accuracy.mean())}


# -----------------------------------------------------------------------------
# SAP score.
# -----------------------------------------------------------------------------


def sap_from_score_matrix(score_matrix: np.ndarray) -> dict[str, float]:
  """SAP of a [D, K] score matrix: mean over factors of (best - second best) score.

  Raises:
    ValueError: unless `score_matrix` is a finite 2-D array with at least two rows.
  """
  score_matrix = np.asarray(score_matrix, dtype=np.float64)
  if score_matrix.ndim != 2 or score_matrix.shape[0] < 2 or score_matrix.shape[1] < 1:
    raise ValueError('score_matrix must be 2-D [num_dims >= 2, num_factors >= 1], got shape '
                     f'{score_matrix.shape}.')
  if not np.isfinite(score_matrix).all():
    raise ValueError('score_matrix must be finite.')
  top = np.sort(score_matrix, axis=0)
  return {'sap': float(np.mean(top[-1] - top[-2]))}


def sap_score(representations: np.ndarray, factors: np.ndarray, rng: np.random.Generator,
              *, num_train: int = 10000, num_test: int = 5000) -> dict[str, float]:
  """Separated attribute predictability (Kumar et al. 2018) for discrete factors.

  As disentanglement_lib with `continuous_factors=False`: `num_train` and `num_test`
  disjoint rows are drawn; score[d, k] is the test accuracy of a
  `LinearSVC(C=0.01, class_weight='balanced')` fitted on dimension d alone to predict
  factor k; see `sap_from_score_matrix`.

  A perfect code does not reach 1: a dimension's score is at most 1 and an uninformative
  dimension still scores about chance (1 / number of values, with balanced classes), and a
  one-dimensional linear one-vs-rest classifier separates the extreme values of an
  ordinal factor but rarely the middle ones. Binary factors on a balanced grid give a
  perfect code a SAP of about 0.5.

  Args:
    representations: [N, D] codes, D >= 2.
    factors: [N, K] integer factor classes of the same rows.
    rng: source of the split and the classifiers' seeds.
    num_train: training rows.
    num_test: test rows; N >= num_train + num_test.

  Returns:
    {'sap': float}.

  Raises:
    ValueError: on malformed arrays, sizes or rng, fewer than two dimensions, too few
      rows, or a factor that is constant over the training rows.
  """
  representations, factors = _check_arrays(representations, factors)
  _check_rng(rng)
  _check_positive(num_train=num_train, num_test=num_test)
  if representations.shape[1] < 2:
    raise ValueError('SAP is a gap between the two most predictive dimensions, so '
                     f'representations need at least 2 dimensions, got {representations.shape[1]}.')
  train, test = _train_test_split(representations.shape[0], num_train, num_test, rng)
  _check_varying_factors(factors[train], 'the SAP training rows')
  num_dims, num_factors = representations.shape[1], factors.shape[1]
  scores = np.zeros((num_dims, num_factors))
  for d in range(num_dims):
    z_train = representations[train, d:d + 1]
    z_test = representations[test, d:d + 1]
    for k in range(num_factors):
      model = sklearn.svm.LinearSVC(C=0.01, class_weight='balanced', random_state=_seed(rng))
      model.fit(z_train, factors[train, k])
      scores[d, k] = np.mean(model.predict(z_test) == factors[test, k])
  return sap_from_score_matrix(scores)


# -----------------------------------------------------------------------------
# All five.
# -----------------------------------------------------------------------------


def all_scores(representations: np.ndarray, factors: np.ndarray, rng: np.random.Generator,
               *, batch_size: int = 64, num_train: int = 10000, num_eval: int = 5000,
               num_variance_estimate: int = 10000, num_bins: int = 20,
               prune_threshold: float = 0.05) -> dict[str, float]:
  """The headline number of each of the five metrics with the published protocols.

  The published protocols share their sizes: `num_train` is BetaVAE's and FactorVAE's
  training examples, DCI's and SAP's training rows and MIG's number of rows; `num_eval`
  is BetaVAE's and FactorVAE's evaluation examples and DCI's and SAP's test rows. MIG,
  DCI and SAP draw their rows without replacement, so N >= num_train + num_eval.

  Each metric gets its own child generator of `rng`, so changing one metric's sizes does
  not change the others' draws.

  Args:
    representations: [N, D] codes, D >= 2.
    factors: [N, K] integer factor classes of the same rows; every factor must vary.
    rng: source of all randomness.
    batch_size, num_train, num_eval, num_variance_estimate, num_bins, prune_threshold:
      see the individual metrics.

  Returns:
    Exactly the keys beta_vae_score, factor_vae_score, mig, dci_disentanglement,
    dci_completeness, dci_informativeness and sap.

  Raises:
    ValueError: as the individual metrics, checked before any metric runs where possible.
  """
  representations, factors = _check_arrays(representations, factors)
  _check_rng(rng)
  _check_positive(batch_size=batch_size, num_train=num_train, num_eval=num_eval)
  _check_varying_factors(factors, 'factors')
  if num_train + num_eval > representations.shape[0]:
    raise ValueError(f'need num_train + num_eval = {num_train} + {num_eval} points for the '
                     f'DCI and SAP splits, got only {representations.shape[0]}; pass '
                     'smaller sizes.')
  beta_rng, factor_rng, mig_rng, dci_rng, sap_rng = rng.spawn(5)
  mig_rows = mig_rng.choice(representations.shape[0], size=num_train, replace=False)
  return {
      'beta_vae_score': beta_vae_score(
          representations, factors, beta_rng, batch_size=batch_size, num_train=num_train,
          num_eval=num_eval)['beta_vae_score'],
      'factor_vae_score': factor_vae_score(
          representations, factors, factor_rng, batch_size=batch_size, num_train=num_train,
          num_eval=num_eval, num_variance_estimate=num_variance_estimate,
          prune_threshold=prune_threshold)['factor_vae_score'],
      **mig(representations[mig_rows], factors[mig_rows], num_bins=num_bins),
      **dci(representations, factors, dci_rng, num_train=num_train, num_test=num_eval),
      **sap_score(representations, factors, sap_rng, num_train=num_train, num_test=num_eval),
  }


# -----------------------------------------------------------------------------
# The evaluation's score family.
# -----------------------------------------------------------------------------

# The keys of `all_scores`, in the order eval.json writes them.
KEYS = ('beta_vae_score', 'factor_vae_score', 'mig', 'dci_disentanglement',
        'dci_completeness', 'dci_informativeness', 'sap')


def representation_scores(z: np.ndarray, factors: np.ndarray, seed: int) -> dict[str, float]:
  """The five disentanglement metrics (seven keys) of a representation against the factors.

  In an evaluation the representation is the method's z (`Method.eval_outputs`;
  for the LatentGAN-AE the encoder's latent Enc(x), the paper's "disentangled
  latent distribution" that G models). Rows are the eval split's, which for
  dSprites is a uniform sample of the factor grid (the module docstring explains
  what that changes). The published protocols' sizes (10000 train / 5000 eval)
  are used when the split has 15000 points or more, otherwise scaled down to 2/3
  and 1/3 of it (smoke runs); factors constant over the split (a tiny split) are
  dropped, and with no factor left, or too few rows, the result is {}.
  """
  varying = np.array([len(np.unique(factors[:, i])) > 1 for i in range(factors.shape[1])])
  factors = factors[:, varying]
  n = len(z)
  num_train, num_eval = (10000, 5000) if n >= 15000 else (max(2 * n // 3, 1), max(n // 3, 1))
  if factors.shape[1] == 0 or num_train + num_eval > n:
    return {}
  return all_scores(
      z, factors, np.random.default_rng(seed), num_train=num_train, num_eval=num_eval,
      num_variance_estimate=min(10000, n))


def scores(context: 'outputs_lib.Context') -> dict[str, float]:
  """`representation_scores` of the eval split where the dataset has factors, else {}."""
  outputs = context.outputs
  if 'factors' not in outputs:
    return {}
  return representation_scores(outputs['z'], outputs['factors'], context.config.seed)
