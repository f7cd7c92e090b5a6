"""Tests for `lgae.core.latent`: G's input layout, code sampling and traversal grids.

Expected layouts and widths are written out by hand from the paper's tables;
statistical checks use bounds that a wrong distribution would clearly break.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import celeba, chairs, mnist
from lgae.core import latent

# -----------------------------------------------------------------------------
# CodeLayout.
# -----------------------------------------------------------------------------


@pytest.mark.parametrize('config_module, noise, categorical, num_cont, width', [
    (mnist, 64, (10,), 2, 76),                  # 64 + 10 + 2, Table 2.
    (chairs, 128, (20, 20, 20), 2, 190),        # 128 + 3 * 20 + 2, Table 3.
    (celeba, 128, (10,) * 10, 0, 228),          # 128 + 10 * 10, Table 4.
])
def test_layout_from_config(config_module, noise, categorical, num_cont, width):
  """from_config reads the codes block; input_dim is the table's G input width."""
  config = config_module.get_config()
  layout = latent.CodeLayout.from_config(config)
  assert layout == latent.CodeLayout(noise_dim=noise, categorical=categorical,
                                     num_continuous=num_cont)
  assert isinstance(layout.categorical, tuple)
  assert layout.input_dim == width
  assert layout.input_dim == config.codes.generator_input_dim


def test_layout_input_dim_by_hand():
  """input_dim = noise + sum(K) + n_cont on an irregular layout: 5 + 3 + 7 + 4."""
  assert latent.CodeLayout(5, (3, 7), 4).input_dim == 19
  assert latent.CodeLayout(5, (), 0).input_dim == 5


# -----------------------------------------------------------------------------
# sample().
# -----------------------------------------------------------------------------

LAYOUT = latent.CodeLayout(noise_dim=6, categorical=(3, 10, 20), num_continuous=2)


@pytest.mark.parametrize('layout', [
    LAYOUT,
    latent.CodeLayout(noise_dim=4, categorical=(), num_continuous=3),
    latent.CodeLayout(noise_dim=4, categorical=(10,) * 4, num_continuous=0),
])
def test_sample_shapes_and_dtypes(layout):
  """noise [N, noise] float32, categorical [N, n_cat] int32, continuous [N, n_cont] float32."""
  codes = latent.sample(jax.random.PRNGKey(0), layout, 7)
  assert codes.noise.shape == (7, layout.noise_dim)
  assert codes.categorical.shape == (7, len(layout.categorical))
  assert codes.continuous.shape == (7, layout.num_continuous)
  assert codes.noise.dtype == jnp.float32
  assert codes.categorical.dtype == jnp.int32
  assert codes.continuous.dtype == jnp.float32


@pytest.fixture(scope='module')
def big_sample():
  return latent.sample(jax.random.PRNGKey(42), LAYOUT, 20_000)


def test_sample_ranges(big_sample):
  """Continuous codes lie in [-1, 1), categories in [0, K) for each code."""
  cont = np.asarray(big_sample.continuous)
  assert cont.min() >= -1.0 and cont.max() < 1.0
  cat = np.asarray(big_sample.categorical)
  for i, k in enumerate(LAYOUT.categorical):
    assert cat[:, i].min() == 0
    assert cat[:, i].max() == k - 1


@pytest.mark.parametrize('index', [0, 1, 2])
def test_sample_categories_uniform(big_sample, index):
  """Pearson chi-square of the category counts stays below a loose bound.

  Under uniformity the statistic has mean K - 1 and std sqrt(2 (K - 1)); the
  bound K - 1 + 8 sqrt(2 (K - 1)) is never hit by chance, while e.g. dropping
  one category (randint(0, K - 1)) gives a statistic of about N / (K - 1).
  """
  k = LAYOUT.categorical[index]
  n = big_sample.categorical.shape[0]
  counts = np.bincount(np.asarray(big_sample.categorical[:, index]), minlength=k)
  assert counts.shape == (k,)
  expected = n / k
  chi2 = float(np.sum((counts - expected) ** 2 / expected))
  assert chi2 < (k - 1) + 8 * np.sqrt(2 * (k - 1))


def test_sample_categorical_codes_independent(big_sample):
  """Codes 1 and 2 (K = 10, 20) are drawn separately: they agree ~1/20 of the time."""
  cat = np.asarray(big_sample.categorical)
  agree = np.mean(cat[:, 1] == cat[:, 2])
  assert abs(agree - 1 / 20) < 0.01


def test_sample_noise_standard_normal(big_sample):
  """Noise has mean ~0 and std ~1 (120k draws: standard error ~0.003)."""
  noise = np.asarray(big_sample.noise)
  assert abs(noise.mean()) < 0.02
  assert abs(noise.std() - 1.0) < 0.02
  # Every noise column is N(0, 1), not just the pooled draws.
  np.testing.assert_allclose(noise.mean(axis=0), 0.0, atol=0.05)
  np.testing.assert_allclose(noise.std(axis=0), 1.0, atol=0.05)


def test_sample_continuous_uniform(big_sample):
  """U(-1, 1) has mean 0 and variance 1/3; a quarter of draws fall in each half-interval."""
  cont = np.asarray(big_sample.continuous)
  np.testing.assert_allclose(cont.mean(axis=0), 0.0, atol=0.03)
  np.testing.assert_allclose(cont.var(axis=0), 1 / 3, atol=0.02)
  np.testing.assert_allclose(np.mean(cont > 0.5, axis=0), 0.25, atol=0.02)


def test_sample_deterministic_per_key():
  """Same key, same codes; another key, different codes in every part."""
  a = latent.sample(jax.random.PRNGKey(1), LAYOUT, 64)
  b = latent.sample(jax.random.PRNGKey(1), LAYOUT, 64)
  c = latent.sample(jax.random.PRNGKey(2), LAYOUT, 64)
  for x, y in ((a.noise, b.noise), (a.categorical, b.categorical),
               (a.continuous, b.continuous)):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a.noise, c.noise)
  assert not np.array_equal(a.categorical, c.categorical)
  assert not np.array_equal(a.continuous, c.continuous)


# -----------------------------------------------------------------------------
# generator_input().
# -----------------------------------------------------------------------------


def test_generator_input_hand_built():
  """Layout [noise(2) | one-hot Cat(3) | one-hot Cat(2) | U x 2] on two rows."""
  layout = latent.CodeLayout(noise_dim=2, categorical=(3, 2), num_continuous=2)
  codes = latent.Codes(
      noise=jnp.array([[0.1, 0.2], [0.3, 0.4]]),
      categorical=jnp.array([[2, 0], [0, 1]], jnp.int32),
      continuous=jnp.array([[0.5, -0.5], [0.7, 0.9]]))
  expected = np.array([
      [0.1, 0.2, 0, 0, 1, 1, 0, 0.5, -0.5],
      [0.3, 0.4, 1, 0, 0, 0, 1, 0.7, 0.9],
  ], np.float32)
  got = latent.generator_input(codes, layout)
  assert got.shape == (2, layout.input_dim) == (2, 9)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, expected, atol=0)


@pytest.mark.parametrize('config_module', [mnist, chairs, celeba])
def test_generator_input_blocks_from_sample(config_module):
  """On sampled codes: noise first, one one-hot per Cat code at its offset, U codes last."""
  layout = latent.CodeLayout.from_config(config_module.get_config())
  codes = latent.sample(jax.random.PRNGKey(3), layout, 16)
  g = np.asarray(latent.generator_input(codes, layout))
  assert g.shape == (16, layout.input_dim)
  np.testing.assert_array_equal(g[:, :layout.noise_dim], codes.noise)
  offset = layout.noise_dim
  for i, k in enumerate(layout.categorical):
    block = g[:, offset:offset + k]
    np.testing.assert_array_equal(block.sum(axis=1), 1.0)
    assert set(np.unique(block)) <= {0.0, 1.0}
    np.testing.assert_array_equal(block.argmax(axis=1), codes.categorical[:, i])
    offset += k
  np.testing.assert_array_equal(g[:, offset:], codes.continuous)
  assert g.shape[1] - offset == layout.num_continuous


# -----------------------------------------------------------------------------
# Traversal grids.
# -----------------------------------------------------------------------------

GRID_LAYOUT = latent.CodeLayout(noise_dim=3, categorical=(4, 5), num_continuous=2)


@pytest.mark.parametrize('code_index', [0, 1])
def test_category_grid(code_index):
  """Row r sets Cat code `code_index` to r; everything else is shared down a column."""
  num_columns = 3
  k = GRID_LAYOUT.categorical[code_index]
  codes = latent.category_grid(jax.random.PRNGKey(5), GRID_LAYOUT, code_index, num_columns)
  assert codes.noise.shape == (k * num_columns, 3)
  assert codes.categorical.shape == (k * num_columns, 2)
  assert codes.continuous.shape == (k * num_columns, 2)
  noise = np.asarray(codes.noise).reshape(k, num_columns, 3)
  cat = np.asarray(codes.categorical).reshape(k, num_columns, 2)
  cont = np.asarray(codes.continuous).reshape(k, num_columns, 2)
  expected_rows = np.repeat(np.arange(k)[:, None], num_columns, axis=1)
  np.testing.assert_array_equal(cat[:, :, code_index], expected_rows)
  other = 1 - code_index
  for r in range(k):
    np.testing.assert_array_equal(noise[r], noise[0])
    np.testing.assert_array_equal(cont[r], cont[0])
    np.testing.assert_array_equal(cat[r, :, other], cat[0, :, other])
  # Columns are distinct draws.
  assert len({tuple(row) for row in noise[0]}) == num_columns
  # Shared codes are still valid draws.
  assert cat[..., other].min() >= 0 and cat[..., other].max() < GRID_LAYOUT.categorical[other]
  assert cont.min() >= -1.0 and cont.max() < 1.0


@pytest.mark.parametrize('layout', [
    GRID_LAYOUT,
    latent.CodeLayout(noise_dim=3, categorical=(), num_continuous=3),
])
@pytest.mark.parametrize('code_index', [0, 1])
def test_continuous_traversal(layout, code_index):
  """Only U_{code_index} sweeps `values` along a row; noise, Cat and other U stay fixed."""
  values = [-1.5, -0.5, 0.25, 1.5]
  num_rows = 6
  n = len(values)
  codes = latent.continuous_traversal(jax.random.PRNGKey(6), layout, code_index, values,
                                      num_rows)
  assert codes.continuous.shape == (num_rows * n, layout.num_continuous)
  noise = np.asarray(codes.noise).reshape(num_rows, n, -1)
  cat = np.asarray(codes.categorical).reshape(num_rows, n, -1)
  cont = np.asarray(codes.continuous).reshape(num_rows, n, -1)
  np.testing.assert_array_equal(cont[:, :, code_index],
                                np.tile(np.array(values, np.float32), (num_rows, 1)))
  others = [j for j in range(layout.num_continuous) if j != code_index]
  for j in range(n):
    np.testing.assert_array_equal(noise[:, j], noise[:, 0])
    np.testing.assert_array_equal(cat[:, j], cat[:, 0])
    np.testing.assert_array_equal(cont[:, j, others], cont[:, 0, others])
  # Rows are different draws.
  assert len({tuple(row) for row in noise[:, 0]}) == num_rows
  assert np.all(np.abs(cont[:, :, others]) <= 1.0)
  if layout.categorical:
    # Row r takes category r mod K of the first Cat code: 0 1 2 3 0 1 for K = 4.
    np.testing.assert_array_equal(cat[:, 0, 0], [0, 1, 2, 3, 0, 1])


@pytest.mark.parametrize('num, expected', [
    (7, [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]),
    (4, [-1.5, -0.5, 0.5, 1.5]),
    (2, [-1.5, 1.5]),
])
def test_traversal_values(num, expected):
  """Evenly spaced from -1.5 to 1.5 inclusive (the paper's sweep), float32."""
  got = latent.traversal_values(num)
  assert got.dtype == np.float32
  assert got.shape == (num,)
  assert got[0] == -1.5 and got[-1] == 1.5
  np.testing.assert_allclose(got, expected, atol=1e-6)


def test_traversal_values_custom_range():
  """low/high override the endpoints."""
  np.testing.assert_allclose(latent.traversal_values(3, -1.0, 1.0), [-1.0, 0.0, 1.0])


def test_noise_prior_is_the_layouts():
  key = jax.random.PRNGKey(3)
  normal = latent.sample(key, latent.CodeLayout(64, (10,), 2), 4096).noise
  uniform = latent.sample(key, latent.CodeLayout(64, (10,), 2, noise='uniform'), 4096).noise
  # The default is exactly the draw of earlier versions (checkpointed runs resume unchanged).
  k_noise = jax.random.split(key, 3)[0]
  np.testing.assert_array_equal(normal, jax.random.normal(k_noise, (4096, 64)))
  assert float(jnp.min(uniform)) >= -1.0 and float(jnp.max(uniform)) <= 1.0
  assert abs(float(jnp.var(uniform)) - 1 / 3) < 0.01 and abs(float(jnp.var(normal)) - 1) < 0.02


def test_noise_prior_from_config():
  from configs import infogan_mnist  # pylint: disable=g-import-not-at-top
  assert latent.CodeLayout.from_config(infogan_mnist.get_config()).noise == 'uniform'
  assert latent.CodeLayout.from_config(mnist.get_config()).noise == 'normal'
