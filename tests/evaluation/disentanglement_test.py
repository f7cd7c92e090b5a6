"""Oracle tests for `lgae.evaluation.disentanglement`.

The ground truth is the full grid of four factors with 3, 4, 5 and 6 values (360 points),
so every "draw rows sharing a factor value" in the sampling metrics is exact. Three codes
bracket each metric: the factors themselves (perfect), Gaussian noise (chance) and a dense
random rotation of the standardised factors (informative but entangled). Sample sizes are
far below the published defaults to keep the file fast; the bounds below leave room for
the resulting noise (checked to hold for metric seeds 0-4, not just the seed used here).
"""

import numpy as np
import pytest
import scipy.stats

from lgae.evaluation import disentanglement as dis

_SIZES = (3, 4, 5, 6)
_NUM_FACTORS = len(_SIZES)
_CHANCE = 1.0 / _NUM_FACTORS   # Uniformly chosen fixed factor in BetaVAE / FactorVAE.
_SAMPLING = dict(batch_size=32, num_train=500, num_eval=1000)
_SPLIT = dict(num_train=240, num_test=120)


def _grid(sizes) -> np.ndarray:
  """[prod(sizes), len(sizes)] int array: every combination of factor values once."""
  axes = np.meshgrid(*[np.arange(s) for s in sizes], indexing='ij')
  return np.stack(axes, axis=-1).reshape(-1, len(sizes))


_FACTORS = _grid(_SIZES)


def _codes() -> dict[str, np.ndarray]:
  standardised = (_FACTORS - _FACTORS.mean(axis=0)) / _FACTORS.std(axis=0)
  # Standardised first so the rotation mixes factors of equal scale; random_state=1 is a
  # typical dense rotation (MIG 0.35, DCI-D 0.37; across seeds 0-7 they range 0.07-0.53).
  rotation = scipy.stats.ortho_group.rvs(_NUM_FACTORS, random_state=1)
  return {
      'perfect': _FACTORS.astype(np.float64),
      'random': np.random.default_rng(100).normal(size=_FACTORS.shape),
      'rotated': standardised @ rotation,
  }


def _evaluate(code: np.ndarray, seed: int) -> dict[str, float]:
  """Every metric's full output, each with its own generator."""
  scores = {}
  scores.update(dis.beta_vae_score(code, _FACTORS, np.random.default_rng(seed), **_SAMPLING))
  scores.update(dis.factor_vae_score(code, _FACTORS, np.random.default_rng(seed),
                                     num_variance_estimate=360, **_SAMPLING))
  scores.update(dis.mig(code, _FACTORS))
  scores.update(dis.dci(code, _FACTORS, np.random.default_rng(seed), **_SPLIT))
  scores.update(dis.sap_score(code, _FACTORS, np.random.default_rng(seed), **_SPLIT))
  return scores


@pytest.fixture(scope='module')
def oracle():
  return {name: _evaluate(code, seed=0) for name, code in _codes().items()}


# -----------------------------------------------------------------------------
# Oracle codes.
# -----------------------------------------------------------------------------


def test_perfect_code_scores_about_one(oracle):
  scores = oracle['perfect']
  assert scores['beta_vae_score'] > 0.95
  assert scores['factor_vae_score'] > 0.95
  assert scores['num_active_dims'] == _NUM_FACTORS
  # On the full grid distinct factors are exactly independent, so every off-diagonal
  # mutual information is 0 and MIG is exactly 1.
  assert scores['mig'] == pytest.approx(1.0)
  assert scores['dci_disentanglement'] > 0.9
  assert scores['dci_completeness'] > 0.9
  assert scores['dci_informativeness'] > 0.95


def test_perfect_code_sap_is_capped_by_chance_and_linearity(oracle):
  # A perfect code does not reach SAP 1: per factor the runner-up dimension is
  # uninformative but still scores chance (1/3 .. 1/6 here), and a 1-D linear one-vs-rest
  # SVM recovers the extreme values of an ordinal factor but few middle ones (own-dimension
  # accuracies are about 0.6-0.7). So the gap is about 0.4; require it clearly above the
  # random code's and the entangled code's.
  scores = oracle['perfect']
  assert scores['sap'] > 0.3
  assert scores['sap'] > oracle['random']['sap'] + 0.25
  assert scores['sap'] > oracle['rotated']['sap'] + 0.1


def test_perfect_binary_code_sap_is_one_half():
  # Binary factors: the own dimension classifies perfectly and every other one is at
  # chance 1/2, so a perfect code's SAP is 1 - 1/2 (up to the split's class imbalance).
  factors = np.tile(_grid((2,) * 6), (4, 1))
  scores = dis.sap_score(factors.astype(np.float64), factors, np.random.default_rng(0),
                         num_train=160, num_test=96)
  assert scores['sap'] == pytest.approx(0.5, abs=0.05)


def test_random_code_scores_about_chance(oracle):
  scores = oracle['random']
  assert scores['beta_vae_score'] == pytest.approx(_CHANCE, abs=0.1)
  assert scores['factor_vae_score'] == pytest.approx(_CHANCE, abs=0.1)
  assert scores['mig'] < 0.1
  assert scores['dci_disentanglement'] < 0.2
  # Chance for the factors' mean is mean(1/size) = 0.2 on this grid.
  assert scores['dci_informativeness'] < 0.4
  assert scores['sap'] < 0.1


def test_rotated_code_is_informative_but_entangled(oracle):
  rotated, perfect = oracle['rotated'], oracle['perfect']
  assert rotated['mig'] < 0.6
  assert rotated['mig'] < perfect['mig'] - 0.4
  assert rotated['dci_disentanglement'] < 0.6
  assert rotated['dci_disentanglement'] < perfect['dci_disentanglement'] - 0.4
  assert rotated['dci_completeness'] < perfect['dci_completeness'] - 0.4
  # The rotation loses no information; axis-aligned trees just need more splits for it.
  assert rotated['dci_informativeness'] > 0.75
  assert rotated['dci_informativeness'] > oracle['random']['dci_informativeness'] + 0.4


def test_constant_code():
  code = np.full(_FACTORS.shape, 3.0)
  rng = np.random.default_rng(0)
  scores = dis.factor_vae_score(code, _FACTORS, rng, num_variance_estimate=360, **_SAMPLING)
  assert scores == {'factor_vae_score': 0.0, 'factor_vae_train_accuracy': 0.0,
                    'num_active_dims': 0.0}
  assert dis.mig(code, _FACTORS) == {'mig': 0.0}
  assert dis.sap_score(code, _FACTORS, rng, **_SPLIT)['sap'] == pytest.approx(0.0)


def test_all_scores_keys_and_values():
  scores = dis.all_scores(_FACTORS.astype(np.float64), _FACTORS, np.random.default_rng(0),
                          batch_size=32, num_train=240, num_eval=120,
                          num_variance_estimate=360)
  assert set(scores) == {'beta_vae_score', 'factor_vae_score', 'mig', 'dci_disentanglement',
                         'dci_completeness', 'dci_informativeness', 'sap'}
  assert all(type(value) is float for value in scores.values())
  for key in ('beta_vae_score', 'factor_vae_score', 'dci_informativeness'):
    assert scores[key] > 0.95, key
  # MIG on a 240-point subsample: independent factors have small non-zero plug-in MI.
  assert scores['mig'] > 0.9
  assert scores['dci_disentanglement'] > 0.9
  assert scores['sap'] > 0.3


def test_scores_are_deterministic_given_the_generator():
  code = _codes()['rotated']
  first = dis.factor_vae_score(code, _FACTORS, np.random.default_rng(5), **_SAMPLING)
  second = dis.factor_vae_score(code, _FACTORS, np.random.default_rng(5), **_SAMPLING)
  assert first == second


# -----------------------------------------------------------------------------
# Hand-computed examples.
# -----------------------------------------------------------------------------


def test_same_value_sampler_draws_uniformly_within_the_anchor_group():
  factors = np.array([[0, 5], [1, 5], [0, 7], [2, 7], [0, 5]])
  sampler = dis._SameValueSampler(factors)  # pylint: disable=protected-access
  rng = np.random.default_rng(0)
  anchors = np.full(6000, 2)          # Row 2 has factor 0 = 0 (rows 0, 2, 4), factor 1 = 7.
  drawn = sampler.partners(np.zeros(6000, np.int64), anchors, rng)
  assert set(drawn) == {0, 2, 4}
  np.testing.assert_allclose(np.bincount(drawn, minlength=5)[[0, 2, 4]] / 6000, 1 / 3,
                             atol=0.03)
  drawn = sampler.partners(np.ones(6000, np.int64), anchors, rng)
  assert set(drawn) == {2, 3}


def test_beta_vae_code_of_one_factor_out_of_three():
  # The code is factor 0 alone. Fixing factor 0 gives feature 0; fixing factor 1 or 2
  # gives the same distribution of mean |delta factor 0| > 0, so no classifier can tell
  # those two apart: the best accuracy is 1/3 + 1/3 = 2/3.
  code = _FACTORS[:, :1].astype(np.float64)
  scores = dis.beta_vae_score(code, _FACTORS[:, :3], np.random.default_rng(0),
                              batch_size=16, num_train=500, num_eval=2000)
  assert scores['beta_vae_score'] == pytest.approx(2 / 3, abs=0.04)


def test_factor_vae_prunes_collapsed_dimensions():
  rng = np.random.default_rng(0)
  # Dimension 1 is collapsed (std 0.01 < 0.05); dimensions 0 and 2 carry factors 0 and 1.
  code = np.stack([_FACTORS[:, 0], 0.01 * rng.normal(size=len(_FACTORS)),
                   _FACTORS[:, 1]], axis=1).astype(np.float64)
  scores = dis.factor_vae_score(code, _FACTORS[:, :2], rng, num_variance_estimate=360,
                                **_SAMPLING)
  assert scores['num_active_dims'] == 2.0
  assert scores['factor_vae_score'] == 1.0


def test_factor_vae_is_invariant_to_dimension_scales():
  # A noisy perfect code with scales 0.1 .. 100: with factor k fixed, dimension k keeps
  # variance 0.3^2 * scale_k^2 and the others about (var(f) + 0.09) * scale^2, so without
  # dividing by the global scales the 0.1-scaled dimension would win every vote.
  rng = np.random.default_rng(0)
  scales = np.array([0.1, 1.0, 10.0, 100.0])
  code = (_FACTORS + 0.3 * rng.normal(size=_FACTORS.shape)) * scales
  scores = dis.factor_vae_score(code, _FACTORS, rng, num_variance_estimate=360, **_SAMPLING)
  assert scores['num_active_dims'] == _NUM_FACTORS
  assert scores['factor_vae_score'] > 0.95


def test_majority_vote_accuracy_hand_computed():
  # Train votes [dims, factors]: dim 0 -> factor 0 (8 vs 2), dim 1 -> factor 1 (9 vs 1),
  # dim 2 ties 3 : 3 -> the lower factor, 0. Correct train votes 8 + 9 + 3 of 26.
  train = np.array([[8, 2], [1, 9], [3, 3]])
  # Eval votes scored by the same mapping: 5 + 10 + 2 of 30.
  evaluation = np.array([[5, 5], [0, 10], [2, 8]])
  scores = dis.majority_vote_accuracy(train, evaluation)
  assert scores['train_accuracy'] == pytest.approx(20 / 26)
  assert scores['eval_accuracy'] == pytest.approx(17 / 30)
  assert dis.majority_vote_accuracy(np.zeros((2, 2)), np.zeros((2, 2)))['eval_accuracy'] == 0


def test_mig_hand_computed():
  # Two binary factors on their full grid; z0 = factor 0, z1 = factor 1 (affinely mapped,
  # which binning ignores), z2 = factor 0 AND factor 1. In nats:
  #   H(f) = ln 2, I(z0; f0) = I(z1; f1) = ln 2, I(z1; f0) = I(z0; f1) = 0,
  #   I(z2; f0) = H(z2) - H(z2 | f0) = h(1/4) - ln(2) / 2,
  # so each factor's gap is ln 2 - h(1/4) + ln(2) / 2 and MIG = 1.5 - h(1/4) / ln 2.
  # A third, constant factor has zero entropy and must be skipped, not averaged in.
  f = np.tile(np.array([[0, 0, 4], [0, 1, 4], [1, 0, 4], [1, 1, 4]]), (3, 1))
  code = np.stack([3.0 * f[:, 0] - 1.0, -2.0 * f[:, 1], f[:, 0] * f[:, 1]], axis=1)
  h_quarter = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
  assert dis.mig(code, f, num_bins=2)['mig'] == pytest.approx(1.5 - h_quarter / np.log(2))
  # The default 20 bins put the two values of each column into the first and last bins.
  assert dis.mig(code, f)['mig'] == pytest.approx(1.5 - h_quarter / np.log(2))


def test_mig_duplicated_code_has_no_gap():
  code = np.concatenate([_FACTORS, _FACTORS], axis=1).astype(np.float64)
  assert dis.mig(code, _FACTORS)['mig'] == pytest.approx(0.0, abs=1e-12)


def test_dci_from_importance_hand_computed():
  # Rows = dims, columns = factors.
  #   dim 0: (2, 2) -> 1 - H_2(1/2, 1/2) = 0, weight 4/8;  dim 1: (0, 4) -> 1, weight 4/8.
  #   factor 0: (2, 0) -> 1, weight 2/8;  factor 1: (2, 4) -> 1 - H_2(1/3), weight 6/8.
  importance = np.array([[2.0, 2.0], [0.0, 4.0]])
  h_third = -(np.log2(1 / 3) / 3 + np.log2(2 / 3) * 2 / 3)
  scores = dis.dci_from_importance(importance)
  assert scores['dci_disentanglement'] == pytest.approx(0.5)
  assert scores['dci_completeness'] == pytest.approx(0.25 + 0.75 * (1 - h_third))


@pytest.mark.parametrize('importance, disentanglement, completeness', [
    (np.diag([5.0] * 5), 1.0, 1.0),
    # An unused code dimension weighs nothing.
    (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 1.0, 1.0),
    # Every factor captured twice: completeness 1 - log 2 / log 10 (base D = 10).
    (np.vstack([np.diag([5.0] * 5)] * 2), 1.0, 1 - np.log(2) / np.log(10)),
    # Every code informs two factors: disentanglement 1 - log 2 / log 10 (base K = 10).
    (np.hstack([np.diag([5.0] * 5)] * 2), 1 - np.log(2) / np.log(10), 1.0),
    (np.zeros((3, 3)), 0.0, 0.0),
    # A single factor: every row is a distribution over one outcome, entropy 0.
    (np.array([[1.0], [3.0]]), 1.0, 1 - scipy.stats.entropy([0.25, 0.75], base=2)),
])
def test_dci_from_importance_reference_cases(importance, disentanglement, completeness):
  scores = dis.dci_from_importance(importance)
  assert scores['dci_disentanglement'] == pytest.approx(disentanglement)
  assert scores['dci_completeness'] == pytest.approx(completeness)


def test_sap_from_score_matrix_hand_computed():
  # [dims, factors]: factor 0 gap 0.9 - 0.5, factor 1 gap 0.8 - 0.3; mean 0.45.
  scores = np.array([[0.9, 0.2], [0.5, 0.3], [0.1, 0.8]])
  assert dis.sap_from_score_matrix(scores)['sap'] == pytest.approx(0.45)


# -----------------------------------------------------------------------------
# Input validation.
# -----------------------------------------------------------------------------


def _rng():
  return np.random.default_rng(0)


_Z = _FACTORS.astype(np.float64)
_BAD_ARRAYS = [
    (_Z[:, 0], _FACTORS, 'representations must be a 2-D'),
    (_Z, _FACTORS[:, 0], 'factors must be a 2-D'),
    (_Z[:-1], _FACTORS, 'same number of points'),
    (_Z, _Z, 'integer class indices'),
    (np.where(np.arange(_Z.size).reshape(_Z.shape) == 7, np.nan, _Z), _FACTORS, 'NaN'),
    (_Z, np.concatenate([_FACTORS, np.zeros((len(_Z), 1), int)], axis=1),
     'factor 4 is constant'),
]


@pytest.mark.parametrize('representations, factors, match', _BAD_ARRAYS)
@pytest.mark.parametrize('metric', [
    lambda z, f: dis.beta_vae_score(z, f, _rng(), **_SAMPLING),
    lambda z, f: dis.factor_vae_score(z, f, _rng(), **_SAMPLING),
    lambda z, f: dis.dci(z, f, _rng(), **_SPLIT),
    lambda z, f: dis.sap_score(z, f, _rng(), **_SPLIT),
    lambda z, f: dis.all_scores(z, f, _rng(), num_train=240, num_eval=120),
], ids=['beta_vae', 'factor_vae', 'dci', 'sap', 'all'])
def test_metrics_reject_bad_arrays(metric, representations, factors, match):
  with pytest.raises(ValueError, match=match):
    metric(representations, factors)


@pytest.mark.parametrize('call, match', [
    (lambda: dis.mig(_Z[:, 0], _FACTORS), 'representations must be a 2-D'),
    (lambda: dis.mig(_Z[:-1], _FACTORS), 'same number of points'),
    (lambda: dis.mig(_Z[:, :1], _FACTORS), 'at least 2 dimensions'),
    (lambda: dis.mig(_Z, np.zeros_like(_FACTORS)), 'every factor is constant'),
    (lambda: dis.mig(_Z, _FACTORS, num_bins=0), 'num_bins must be a positive integer'),
    (lambda: dis.sap_score(_Z[:, :1], _FACTORS, _rng(), **_SPLIT), 'at least 2 dimensions'),
    (lambda: dis.dci(_Z, _FACTORS, _rng(), num_train=300, num_test=100), 'distinct points'),
    (lambda: dis.all_scores(_Z, _FACTORS, _rng()), 'pass smaller sizes'),
    (lambda: dis.dci(_Z, _FACTORS, 0, **_SPLIT), 'np.random.Generator'),
    (lambda: dis.beta_vae_score(_Z, _FACTORS, _rng(), num_train=0), 'num_train must be'),
    (lambda: dis.factor_vae_score(_Z, _FACTORS, _rng(), batch_size=1), 'at least 2'),
    (lambda: dis.factor_vae_score(_Z, _FACTORS, _rng(), prune_threshold=-1.0),
     'prune_threshold'),
    # A one-row training split cannot hold two values of any factor.
    (lambda: dis.dci(_Z, _FACTORS, _rng(), num_train=1, num_test=1),
     'constant in the DCI training rows'),
    (lambda: dis.dci_from_importance(np.array([[1.0, -1.0]])), 'non-negative'),
    (lambda: dis.dci_from_importance(np.ones(3)), 'importance must be a non-empty 2-D'),
    (lambda: dis.sap_from_score_matrix(np.ones((1, 3))), 'num_dims >= 2'),
    (lambda: dis.majority_vote_accuracy(np.ones((2, 2)), np.ones((2, 3))), 'equal shape'),
])
def test_bad_arguments_raise(call, match):
  with pytest.raises(ValueError, match=match):
    call()
