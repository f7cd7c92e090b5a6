"""Paper-style figures: grid shapes per config, the sweep values, PNG files."""

import os

import jax
import matplotlib.image
import numpy as np
import pytest

from configs import chairs, mnist
from lgae.core import latent, parallel
from lgae.data import input_pipeline
from lgae.evaluation import plots, run as evaluation, traversal
from lgae.core import state as state_lib

KEY = jax.random.PRNGKey(0)


def _cell(size, channels, rows, cols):
  """Shape of an `image_grid` of rows x cols images of size x size, padding 1."""
  return (rows * (size + 1) + 1, cols * (size + 1) + 1, channels)


@pytest.fixture(scope='module')
def mnist_setup():
  config = mnist.get_config('smoke')
  return config, state_lib.create_state(config, parallel.make_mesh())


@pytest.fixture(scope='module')
def chairs_setup():
  config = chairs.get_config('smoke')
  return config, state_lib.create_state(config, parallel.make_mesh())


def test_mnist_grids(mnist_setup):
  config, state = mnist_setup
  grid = traversal.samples_by_category(state, config, KEY, num_columns=4)
  assert grid.dtype == np.uint8 and grid.shape == _cell(32, 1, 10, 4)
  np.testing.assert_array_equal(grid, traversal.samples_by_category(state, config, KEY, 4))
  grids = traversal.continuous_traversals(state, config, KEY, num_values=5, num_rows=3)
  assert list(grids) == ['u1', 'u2']
  for grid in grids.values():
    assert grid.shape == _cell(32, 1, 3, 5)
    # The swept code changes the images along a row.
    first, last = grid[1:33, 1:33], grid[1:33, -33:-1]
    assert not np.array_equal(first, last)
  with pytest.raises(ValueError, match='No categorical code 1'):
    traversal.samples_by_category(state, config, KEY, code_index=1)


def test_chairs_grids(chairs_setup):
  config, state = chairs_setup  # 3 x Cat(20), 2 U codes, 64x64x1.
  # 3 columns and rows throughout, as in test_write_figures: the decoder
  # compiles once per batch size.
  grid = traversal.samples_by_category(state, config, KEY, num_columns=3, code_index=2)
  assert grid.shape == _cell(64, 1, 20, 3)
  grids = traversal.continuous_traversals(state, config, KEY, num_values=3, num_rows=3)
  assert {k: g.shape for k, g in grids.items()} == {'u1': _cell(64, 1, 3, 3),
                                                    'u2': _cell(64, 1, 3, 3)}


def test_sweep_codes_follow_the_columns():
  config = mnist.get_config('smoke')
  layout = latent.CodeLayout.from_config(config)
  rows, num_values = 12, 7
  codes = traversal.continuous_traversal_codes(config, KEY, 1, num_values, rows)
  swept = np.asarray(codes.continuous[:, 1]).reshape(rows, num_values)
  np.testing.assert_allclose(swept, np.tile(np.linspace(-1.5, 1.5, num_values), (rows, 1)),
                             atol=1e-6)
  # Everything else is fixed along a row; rows cycle through the categories.
  for name in ('noise', 'categorical', 'continuous'):
    values = np.asarray(getattr(codes, name)).reshape(rows, num_values, -1)
    if name == 'continuous':
      values = values[..., :1]
    assert np.all(values == values[:, :1]), name
  np.testing.assert_array_equal(np.asarray(codes.categorical[::num_values, 0]),
                                np.arange(rows) % layout.categorical[0])


def test_reconstructions_interleave_rows(mnist_setup):
  config, state = mnist_setup
  images = np.random.default_rng(0).uniform(-1, 1, (6, 32, 32, 1)).astype(np.float32)
  grid = traversal.reconstructions(state, config, images, num_columns=3)
  assert grid.shape == _cell(32, 1, 4, 3)
  # Rows are 33 px apart (32 + 1 padding): inputs 0-2, their reconstructions,
  # inputs 3-5, theirs.
  row = lambda r: grid[r * 33:(r + 1) * 33 + 1]
  np.testing.assert_array_equal(row(0), plots.image_grid(images[:3], 1, 3))
  np.testing.assert_array_equal(row(2), plots.image_grid(images[3:], 1, 3))
  recon = np.asarray(jax.device_get(evaluation.reconstruct(state, images)))
  np.testing.assert_array_equal(row(3), plots.image_grid(recon[3:], 1, 3))
  with pytest.raises(ValueError, match='rows of 4'):
    traversal.reconstructions(state, config, images, num_columns=4)


def test_write_figures(chairs_setup, tmp_path):
  config, state = chairs_setup
  images = np.zeros((6, 64, 64, 1), np.float32)
  paths = traversal.write_figures(state, config, str(tmp_path / 'figs'), KEY, images=images,
                                  num_columns=3)
  names = [os.path.basename(p) for p in paths]
  assert names == ['samples_by_category.png', 'samples_by_category_2.png',
                   'samples_by_category_3.png', 'traverse_u1.png', 'traverse_u2.png',
                   'reconstructions.png', 'traverse_z.png']
  assert sorted(os.listdir(tmp_path / 'figs')) == sorted(names)
  for path in paths:
    assert matplotlib.image.imread(path).ndim == 3  # A readable PNG.


def test_write_figures_without_data_writes_nothing(mnist_setup, tmp_path):
  _, state = mnist_setup
  config = mnist.get_config('smoke')
  config.dataset.data_dir = str(tmp_path / 'no_data')
  config.dataset.download = False  # Tests never touch the network.
  with pytest.raises(input_pipeline.DataNotFoundError):
    traversal.write_figures(state, config, str(tmp_path / 'figs'), KEY)
  assert not (tmp_path / 'figs').exists()


def test_representation_sweep_by_hand():
  # Dimension 1 spreads widest, then 2, then 0 (constant): rows in that order.
  z = np.array([[5.0, 0.0, 1.0], [5.0, 10.0, 2.0], [5.0, 20.0, 3.0], [5.0, 30.0, 4.0]])
  points, dims, values = traversal.representation_sweep(z, base_index=2, num_values=3,
                                                        max_rows=2)
  np.testing.assert_array_equal(dims, [1, 2])
  low, high = np.percentile(z, traversal.REPRESENTATION_PERCENTILES, axis=0)
  np.testing.assert_allclose(values, [[low[1], (low[1] + high[1]) / 2, high[1]],
                                      [low[2], (low[2] + high[2]) / 2, high[2]]])
  assert points.shape == (6, 3) and points.dtype == np.float32
  expected = np.tile(z[2], (6, 1))
  expected[0:3, 1] = values[0]
  expected[3:6, 2] = values[1]
  np.testing.assert_allclose(points, expected, rtol=1e-6)


def test_representation_traversal_decodes_the_sweep(chairs_setup):
  # Column j of row r is Dec(point r * V + j): the grid is the decoded sweep.
  config, state = chairs_setup
  images = np.asarray(jax.random.uniform(KEY, (6, 64, 64, 1), minval=-1.0, maxval=1.0))
  grid, dims = traversal.representation_traversal(state, images, num_values=3, max_rows=2)
  z = np.asarray(evaluation.eval_outputs(state, images)['z'])
  points, want_dims, _ = traversal.representation_sweep(z, 0, 3, 2)
  np.testing.assert_array_equal(dims, want_dims)
  decoded = state.ae.apply_fn({'params': state.ae.params, 'batch_stats': state.ae.batch_stats},
                              points, method='decode')
  np.testing.assert_array_equal(grid, plots.image_grid(np.asarray(decoded), 2, 3))
  assert grid.shape == _cell(64, 1, 2, 3)
  del config
