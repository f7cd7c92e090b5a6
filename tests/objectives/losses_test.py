"""Tests for `lgae.objectives.losses` against values computed by hand on tiny inputs.

Handy identities used below, with s(x) = 1 / (1 + exp(-x)):
  -log s(x)     = log(1 + exp(-x))     (BCE with target 1)
  -log(1 - s(x)) = log(1 + exp(x))     (BCE with target 0)
  log(1 + exp(2)) = 2 + log(1 + exp(-2)).
Each expected number is written as a plain numpy formula or a literal.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lgae.objectives import gan, info, reconstruction

LOG2 = 0.6931471805599453
HALF_LOG_2PI = 0.9189385332046727  # 0.5 * log(2 pi)


def _softplus(x):
  """log(1 + exp(x)) in plain numpy, for small |x| only."""
  return np.log1p(np.exp(x))


def test_reference_constants():
  """The literal constants above are what they claim to be."""
  assert LOG2 == pytest.approx(np.log(2.0))
  assert HALF_LOG_2PI == pytest.approx(0.5 * np.log(2 * np.pi))
  assert _softplus(-2.0) == pytest.approx(0.12692801104297263)


# -----------------------------------------------------------------------------
# Reconstruction.
# -----------------------------------------------------------------------------


def test_reconstruction_loss_by_hand():
  """Squared errors 0, 4, 4, 0 over four pixels: mean 2."""
  images = jnp.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1)
  recon = jnp.array([1.0, 0.0, 5.0, 4.0]).reshape(1, 2, 2, 1)
  assert float(reconstruction.reconstruction_loss(images, recon)) == pytest.approx(2.0)


def test_reconstruction_loss_is_per_pixel_mean():
  """Two images x 2 channels: errors 1 everywhere but one pixel off by 3 -> (7 + 9) / 8."""
  images = jnp.zeros((2, 2, 1, 2))
  recon = jnp.ones((2, 2, 1, 2)).at[1, 1, 0, 1].set(3.0)
  assert float(reconstruction.reconstruction_loss(images, recon)) == pytest.approx(16 / 8)
  assert float(reconstruction.reconstruction_loss(images, images)) == 0.0


# -----------------------------------------------------------------------------
# GAN losses.
# -----------------------------------------------------------------------------


def test_discriminator_loss_hard_targets():
  """Real logits [0, 2] vs 1, fake [0, -1] vs 0.

  real: (log 2 + log(1 + e^-2)) / 2; fake: (log 2 + log(1 + e^-1)) / 2.
  Total 0.410038 + 0.503204 = 0.913242.
  """
  real, fake = jnp.array([0.0, 2.0]), jnp.array([0.0, -1.0])
  got = gan.discriminator_loss(real, fake, jnp.ones(2), jnp.zeros(2))
  expected = (LOG2 + _softplus(-2.0)) / 2 + (LOG2 + _softplus(-1.0)) / 2
  assert float(got) == pytest.approx(expected, rel=1e-5)
  assert float(got) == pytest.approx(0.913242, abs=1e-5)


def test_discriminator_loss_smoothed_targets():
  """Real targets 0.9: BCE(x, t) = t log(1 + e^-x) + (1 - t) log(1 + e^x).

  real logits [0, 2]: x = 0 gives log 2 for any t; x = 2 gives
  0.9 * 0.126928 + 0.1 * 2.126928 = 0.326928. fake logit [1] vs 0: log(1 + e).
  """
  real, fake = jnp.array([0.0, 2.0]), jnp.array([1.0])
  got = gan.discriminator_loss(real, fake, jnp.full(2, 0.9), jnp.zeros(1))
  x2 = 0.9 * _softplus(-2.0) + 0.1 * _softplus(2.0)
  expected = (LOG2 + x2) / 2 + _softplus(1.0)
  assert x2 == pytest.approx(0.326928, abs=1e-6)
  assert float(got) == pytest.approx(expected, rel=1e-5)


def test_discriminator_loss_flipped_targets():
  """Swapping the targets swaps which side is penalised: real 3 vs 0, fake -3 vs 1."""
  got = gan.discriminator_loss(jnp.array([3.0]), jnp.array([-3.0]),
                                  jnp.zeros(1), jnp.ones(1))
  assert float(got) == pytest.approx(2 * _softplus(3.0), rel=1e-5)


def test_generator_loss_non_saturating():
  """mean(-log s(x)) on [0, 3, -2] = (log 2 + log(1 + e^-3) + log(1 + e^2)) / 3."""
  logits = jnp.array([0.0, 3.0, -2.0])
  expected = np.mean(-np.log(1 / (1 + np.exp(-np.array([0.0, 3.0, -2.0])))))
  assert expected == pytest.approx(0.956221, abs=1e-6)
  assert float(gan.generator_loss(logits)) == pytest.approx(expected, rel=1e-5)


def test_encoder_adversarial_loss():
  """mean(-log(1 - s(x))) on [0, 3, -2] = (log 2 + log(1 + e^3) + log(1 + e^-2)) / 3."""
  logits = jnp.array([0.0, 3.0, -2.0])
  x = np.array([0.0, 3.0, -2.0])
  expected = np.mean(-np.log(1 - 1 / (1 + np.exp(-x))))
  assert expected == pytest.approx(1.289554, abs=1e-6)
  assert float(gan.encoder_adversarial_loss(logits)) == pytest.approx(expected, rel=1e-5)


# -----------------------------------------------------------------------------
# Mutual-information losses.
# -----------------------------------------------------------------------------


def test_categorical_mi_single_code():
  """Uniform logits over K = 4: cross-entropy log 4 whatever the label."""
  logits = jnp.zeros((3, 4))
  got = info.categorical_mi_loss([logits], jnp.array([[0], [2], [3]]))
  assert float(got) == pytest.approx(np.log(4.0), rel=1e-6)


def test_categorical_mi_summed_over_codes():
  """Two codes, two rows; each code's CE is averaged over the batch, codes are summed.

  Code A (K = 3): row 0 logits 0 0 0, label 2 -> log 3; row 1 logits
  [0, log 2, log 5] = probs [1, 2, 5] / 8, label 2 -> -log(5/8).
  Code B (K = 2): logits [0, log 3] = probs [1/4, 3/4]; row 0 label 1 ->
  -log(3/4), row 1 label 0 -> log 4.
  """
  code_a = jnp.array([[0.0, 0.0, 0.0], [0.0, np.log(2.0), np.log(5.0)]])
  code_b = jnp.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]])
  categories = jnp.array([[2, 1], [2, 0]], jnp.int32)
  expected = (np.log(3.0) - np.log(5 / 8)) / 2 + (-np.log(3 / 4) + np.log(4.0)) / 2
  assert expected == pytest.approx(1.621296, abs=1e-6)
  got = info.categorical_mi_loss([code_a, code_b], categories)
  assert float(got) == pytest.approx(expected, rel=1e-5)
  # Each code enters with its own labels: swapping code order with labels agrees.
  got_swapped = info.categorical_mi_loss([code_b, code_a], categories[:, ::-1])
  assert float(got_swapped) == pytest.approx(expected, rel=1e-5)


def test_categorical_mi_no_codes_is_zero():
  """With no Cat codes the loss is exactly 0."""
  got = info.categorical_mi_loss([], jnp.zeros((4, 0), jnp.int32))
  assert float(got) == 0.0


def test_continuous_mi_by_hand():
  """Unit-variance Gaussian NLL, summed over 2 codes, averaged over 2 rows.

  row 0: errors (0.5, -1) -> 0.5 * 1.25 + 2 * 0.918939 = 2.462877
  row 1: errors (0, 1)    -> 0.5 * 1    + 2 * 0.918939 = 2.337877
  mean 2.400377.
  """
  mean = jnp.array([[0.0, 0.0], [1.0, -1.0]])
  codes = jnp.array([[0.5, -1.0], [1.0, 0.0]])
  expected = ((0.5 * 1.25 + 2 * HALF_LOG_2PI) + (0.5 * 1.0 + 2 * HALF_LOG_2PI)) / 2
  assert expected == pytest.approx(2.400377, abs=1e-6)
  assert float(info.continuous_mi_loss(mean, codes)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize('num_codes', [1, 2, 3])
def test_continuous_mi_perfect_prediction_is_constant(num_codes):
  """A perfect mean still pays 0.5 log(2 pi) per code (the normaliser is included)."""
  c = jnp.linspace(-1.0, 1.0, 5 * num_codes).reshape(5, num_codes)
  got = info.continuous_mi_loss(c, c)
  assert float(got) == pytest.approx(num_codes * HALF_LOG_2PI, rel=1e-6)


def test_continuous_mi_no_codes_is_zero():
  """CelebA has no U codes: [N, 0] arrays give exactly 0 (not 0.5 log 2 pi, not NaN)."""
  got = info.continuous_mi_loss(jnp.zeros((4, 0)), jnp.zeros((4, 0)))
  assert float(got) == 0.0


# -----------------------------------------------------------------------------
# Noisy labels.
# -----------------------------------------------------------------------------


@pytest.mark.parametrize('value, other', [(1.0, 0.0), (0.9, 0.1), (0.0, 1.0)])
def test_noisy_labels_no_flip_is_constant(value, other):
  """flip_prob 0: every target equals `value`, float32, of the asked shape."""
  got = gan.noisy_labels(jax.random.PRNGKey(0), (5, 3), value, other, 0.0)
  assert got.shape == (5, 3)
  assert got.dtype == jnp.float32
  np.testing.assert_array_equal(got, np.full((5, 3), value, np.float32))


@pytest.mark.parametrize('flip_prob', [0.05, 0.3])
def test_noisy_labels_flip_fraction(flip_prob):
  """About flip_prob of 40k targets become `other` (std of the fraction <= 0.0025)."""
  value, other = 0.9, 0.1
  got = np.asarray(gan.noisy_labels(jax.random.PRNGKey(1), (200, 200), value, other,
                                       flip_prob))
  assert got.shape == (200, 200)
  assert got.dtype == np.float32
  flipped = got == np.float32(other)
  kept = got == np.float32(value)
  assert np.all(flipped | kept)
  assert abs(flipped.mean() - flip_prob) < 0.015


def test_noisy_labels_flip_all():
  """flip_prob 1 turns every target into `other`."""
  got = gan.noisy_labels(jax.random.PRNGKey(2), (7,), 1.0, 0.0, 1.0)
  np.testing.assert_array_equal(got, np.zeros(7, np.float32))


def test_noisy_labels_depend_on_key():
  """Same key gives the same flips; a different key different ones."""
  a = gan.noisy_labels(jax.random.PRNGKey(3), (500,), 1.0, 0.0, 0.5)
  b = gan.noisy_labels(jax.random.PRNGKey(3), (500,), 1.0, 0.0, 0.5)
  c = gan.noisy_labels(jax.random.PRNGKey(4), (500,), 1.0, 0.0, 0.5)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


# -----------------------------------------------------------------------------
# Numerical stability.
# -----------------------------------------------------------------------------

BIG = jnp.array([100.0, -100.0])


def test_gan_losses_finite_for_large_logits():
  """Logits +-100 (sigmoid rounds to exactly 0 or 1 in float32) still give finite losses.

  -log s(100) ~ 0 and -log s(-100) ~ 100, so each mean is ~50.
  """
  d = gan.discriminator_loss(BIG, BIG, jnp.ones(2), jnp.zeros(2))
  g = gan.generator_loss(BIG)
  e = gan.encoder_adversarial_loss(BIG)
  for value in (d, g, e):
    assert np.isfinite(float(value))
  assert float(g) == pytest.approx(50.0, rel=1e-5)
  assert float(e) == pytest.approx(50.0, rel=1e-5)
  assert float(d) == pytest.approx(100.0, rel=1e-5)
  assert float(gan.generator_loss(jnp.array([100.0]))) == pytest.approx(0.0, abs=1e-6)


def test_gan_loss_gradients_finite_for_large_logits():
  """Gradients at +-100 are finite: d/dx -log s(x) = s(x) - 1, i.e. ~0 and ~-1/2 per element."""
  grad = jax.grad(gan.generator_loss)(BIG)
  np.testing.assert_allclose(grad, [0.0, -0.5], atol=1e-6)
  grad_e = jax.grad(gan.encoder_adversarial_loss)(BIG)
  np.testing.assert_allclose(grad_e, [0.5, 0.0], atol=1e-6)


def test_categorical_mi_finite_for_large_logits():
  """Logits [100, -100]: CE ~0 for the right label, ~200 for the wrong one."""
  logits = jnp.array([[100.0, -100.0], [100.0, -100.0]])
  got = info.categorical_mi_loss([logits], jnp.array([[0], [1]]))
  assert np.isfinite(float(got))
  assert float(got) == pytest.approx(100.0, rel=1e-5)
