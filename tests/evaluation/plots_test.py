"""Tests for `lgae.evaluation.plots`: grid layout, value mapping and PNG round trips."""

import matplotlib.image
import numpy as np
import pytest

from lgae.evaluation import plots


@pytest.mark.parametrize(
    'rows, cols, padding, channels',
    [(2, 3, 1, 1), (1, 4, 0, 3), (3, 1, 2, 1)])
def test_image_grid_shape_and_dtype(rows, cols, padding, channels):
  images = np.zeros((rows * cols, 5, 4, channels), dtype=np.float32)
  grid = plots.image_grid(images, rows, cols, padding=padding)
  assert grid.dtype == np.uint8
  assert grid.shape == (rows * 5 + (rows + 1) * padding,
                        cols * 4 + (cols + 1) * padding, channels)


def test_image_grid_value_mapping_and_clipping():
  values = np.array([-1.0, 0.0, 1.0, -3.0, 3.0, np.nan])
  images = values.reshape(6, 1, 1, 1)
  grid = plots.image_grid(images, rows=1, cols=6, padding=0)
  # -1 -> 0, 0 -> 128 (127.5 rounded to even), 1 -> 255; out-of-range values
  # clip and NaN renders as black.
  np.testing.assert_array_equal(grid[0, :, 0], [0, 128, 255, 0, 255, 0])


def test_image_grid_layout_is_row_major_with_padding():
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, size=(6, 3, 2, 1))
  grid = plots.image_grid(images, rows=2, cols=3, padding=1, pad_value=-1.0)
  expected = np.rint((images + 1.0) * 127.5).astype(np.uint8)
  for index in range(6):
    row, col = divmod(index, 3)
    top, left = 1 + row * 4, 1 + col * 3
    np.testing.assert_array_equal(grid[top:top + 3, left:left + 2],
                                  expected[index])
  # Border and separator lines carry pad_value=-1 -> 0.
  assert np.all(grid[0] == 0) and np.all(grid[-1] == 0)
  assert np.all(grid[:, 0] == 0) and np.all(grid[:, 3] == 0)
  assert np.all(grid[4] == 0)


def test_image_grid_default_padding_is_white():
  images = -np.ones((4, 2, 2, 1))
  grid = plots.image_grid(images, rows=2, cols=2)
  assert grid[0, 0, 0] == 255
  assert grid[1, 1, 0] == 0


@pytest.mark.parametrize(
    'shape, rows, cols, kwargs, match',
    [
        ((5, 4, 4, 1), 2, 3, {}, 'need 6'),
        ((4, 4, 4), 2, 2, {}, r'\[N, H, W, C\]'),
        ((4, 4, 4, 1), 0, 4, {}, '>= 1'),
        ((4, 4, 4, 1), 2, 2, {'padding': -1}, 'padding'),
    ])
def test_image_grid_rejects_bad_input(shape, rows, cols, kwargs, match):
  with pytest.raises(ValueError, match=match):
    plots.image_grid(np.zeros(shape), rows, cols, **kwargs)


def test_save_png_grayscale_round_trip(tmp_path):
  images = np.stack([-np.ones((4, 3, 1)), np.ones((4, 3, 1))])
  grid = plots.image_grid(images, rows=1, cols=2, padding=0)
  path = tmp_path / 'nested' / 'dir' / 'grid.png'
  plots.save_png(path, grid)
  loaded = matplotlib.image.imread(path)
  assert loaded.shape[:2] == (4, 6)
  # Grey colour map with pinned [0, 255] range: black stays 0, white stays 1.
  np.testing.assert_allclose(loaded[:, :3, 0], 0.0)
  np.testing.assert_allclose(loaded[:, 3:, 0], 1.0)


def test_save_png_grayscale_is_not_contrast_stretched(tmp_path):
  grid = np.full((2, 2, 1), 64, dtype=np.uint8)
  path = tmp_path / 'dark.png'
  plots.save_png(path, grid)
  loaded = matplotlib.image.imread(path)
  np.testing.assert_allclose(loaded[..., 0], 64 / 255, atol=1 / 255)


def test_save_png_rgb_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  grid = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
  path = tmp_path / 'rgb.png'
  plots.save_png(str(path), grid)
  loaded = matplotlib.image.imread(path)
  assert loaded.shape[:2] == (5, 7)
  np.testing.assert_allclose(loaded[..., :3] * 255.0, grid, atol=0.5)


@pytest.mark.parametrize(
    'grid, match',
    [
        (np.zeros((4, 4, 2), dtype=np.uint8), 'C in'),
        (np.zeros((4, 4), dtype=np.uint8), 'C in'),
        (np.zeros((4, 4, 1), dtype=np.float32), 'uint8'),
    ])
def test_save_png_rejects_bad_grid(tmp_path, grid, match):
  with pytest.raises(ValueError, match=match):
    plots.save_png(tmp_path / 'bad.png', grid)


@pytest.mark.parametrize('channels', [1, 3])
def test_labelled_grid_figure_writes_png(tmp_path, channels):
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, size=(6, 8, 8, channels))
  grid = plots.image_grid(images, rows=2, cols=3)
  path = tmp_path / 'figs' / 'fig2.png'
  plots.labelled_grid_figure(
      grid, path, row_labels=['c=0', 'c=1'], col_labels=['z1', 'z2', 'z3'],
      title='Categorical code')
  loaded = matplotlib.image.imread(path)
  assert loaded.ndim == 3 and loaded.shape[-1] in (3, 4)
  # Small grids are upscaled to ~400 px plus margins for the labels.
  assert 300 <= loaded.shape[0] <= 800 and 300 <= loaded.shape[1] <= 1000
  assert path.stat().st_size < 200_000


def test_labelled_grid_figure_without_labels(tmp_path):
  grid = np.zeros((10, 20, 1), dtype=np.uint8)
  path = tmp_path / 'plain.png'
  plots.labelled_grid_figure(grid, path)
  assert matplotlib.image.imread(path).ndim == 3


def test_labelled_grid_figure_rejects_empty_labels(tmp_path):
  grid = np.zeros((10, 10, 1), dtype=np.uint8)
  with pytest.raises(ValueError, match='row_labels'):
    plots.labelled_grid_figure(grid, tmp_path / 'x.png', row_labels=[])
