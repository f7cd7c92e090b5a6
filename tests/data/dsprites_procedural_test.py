"""The procedural dSprites: renderer geometry, factor grid, tfds builder, config.

Nothing here downloads: the builder renders its images, and tfds' own
`dsprites` builder is only asked for its feature spec, which needs no data.
The pixel counts of the release quoted below were measured on the frames of
its README animation (dsprites.gif), which shows images of the dataset itself.
"""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import dsprites
from lgae.core import config_validation
from lgae.data import dsprites_procedural as dp

SQUARE, ELLIPSE, HEART = 0, 1, 2
MID = dp.POSITION_VALUES[15]     # A centre near the middle of the range.


def _centroid(image):
  ys, xs = np.nonzero(image)
  return xs.mean(), ys.mean()


def _principal_axis_degrees(image):
  """Angle of the long axis, degrees in (-90, 90], image axes (y down)."""
  ys, xs = np.nonzero(image)
  x, y = xs - xs.mean(), ys - ys.mean()
  return 0.5 * np.degrees(np.arctan2(2 * (x * y).mean(),
                                     (x * x).mean() - (y * y).mean()))


# -----------------------------------------------------------------------------
# The factor grid.
# -----------------------------------------------------------------------------


def test_grid_is_the_release_grid_in_its_order():
  grid = dp.factor_grid()
  assert grid.shape == (737_280, 5) == (dp.NUM_IMAGES, 5)
  assert dp.FACTOR_SIZES == (3, 6, 40, 32, 32)
  # Nested shape, scale, orientation, x, y with y fastest.
  np.testing.assert_array_equal(grid[:3], [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1],
                                           [0, 0, 0, 0, 2]])
  np.testing.assert_array_equal(grid[32], [0, 0, 0, 1, 0])
  np.testing.assert_array_equal(grid[32 * 32 * 40 * 6], [1, 0, 0, 0, 0])
  np.testing.assert_array_equal(grid[-1], [2, 5, 39, 31, 31])
  np.testing.assert_array_equal(dp.grid_index(grid), np.arange(dp.NUM_IMAGES))
  # The release's latents_possible_values.
  np.testing.assert_allclose(dp.SHAPE_VALUES, [1, 2, 3])
  np.testing.assert_allclose(dp.SCALE_VALUES, [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
  assert dp.ORIENTATION_VALUES[0] == 0
  np.testing.assert_allclose(dp.ORIENTATION_VALUES[[1, 5, -1]],
                             [0.16110732, 0.80553658, 2 * np.pi])
  np.testing.assert_allclose(dp.POSITION_VALUES[[0, 1, -1]],
                             [0, 0.03225806, 1], atol=1e-8)


def test_strided_grid_keeps_full_grid_indices():
  grid = dp.factor_grid((1, 5, 8, 8, 8))
  assert len(grid) == 3 * 2 * 5 * 4 * 4
  assert set(grid[:, 1]) == {0, 5} and set(grid[:, 2]) == {0, 8, 16, 24, 32}
  assert np.all(np.diff(dp.grid_index(grid)) > 0)   # still the release's order.
  with pytest.raises(ValueError, match='strides must be 5 positive ints'):
    dp.factor_grid((1, 0, 1, 1, 1))


# -----------------------------------------------------------------------------
# The renderer.
# -----------------------------------------------------------------------------


def test_binary_nonempty_and_deterministic():
  rows = np.random.default_rng(0).choice(dp.NUM_IMAGES, 300, replace=False)
  classes = dp.factor_grid()[rows]
  images = dp.render_classes(classes)
  assert images.dtype == np.uint8 and images.shape == (300, 64, 64)
  assert set(np.unique(images)) == {0, 1}    # 0/1 as the release, not 0/255.
  assert images.sum((1, 2)).min() >= 50       # the smallest heart has 58 px.
  np.testing.assert_array_equal(images, dp.render_classes(classes))
  # One image equals the same row of a batch (no cross-talk in the batch).
  single = dp.render(*[int(classes[7, 0])] + list(dp.factor_values(classes[7:8])[0, 1:]))
  np.testing.assert_array_equal(single, images[7])


def test_shapes_are_distinct():
  for scale in (0.5, 1.0):
    ims = [dp.render(k, scale, 0.0, MID, MID).astype(bool) for k in range(3)]
    for i in range(3):
      for j in range(i + 1, 3):
        iou = (ims[i] & ims[j]).sum() / (ims[i] | ims[j]).sum()
        assert iou < 0.75, (scale, i, j, iou)   # measured 0.56-0.69.


def test_areas_grow_with_scale_as_in_the_release():
  areas = {k: [int(dp.render(k, s, 0.0, 0.0, 0.0).sum()) for s in dp.SCALE_VALUES]
           for k in range(3)}
  # The release's pixel counts at orientation 0, position (0, 0): the square
  # is 10..20 px wide; ours reproduce the square and ellipse exactly.
  assert areas[SQUARE] == [100, 144, 196, 256, 324, 400]
  assert areas[ELLIPSE] == [76, 104, 144, 184, 228, 288]
  release_heart = np.array([58, 84, 108, 140, 182, 222])
  assert np.all(np.diff(areas[HEART]) > 0)
  np.testing.assert_allclose(areas[HEART], release_heart, rtol=0.04)
  # Mean over the 40 orientations at scale 1, position (0, 0): the release's
  # rotated square has 364-372 px, i.e. it is 19.2 px wide, not 20.
  release_turning = {SQUARE: 370.2, ELLIPSE: 289.2, HEART: 224.85}
  for k, release in release_turning.items():
    mean = np.mean([dp.render(k, 1.0, t, 0.0, 0.0).sum()
                    for t in dp.ORIENTATION_VALUES])
    assert abs(mean - release) < 0.01 * release, (k, mean)
  # Area ~ scale^2 at every orientation and position too.
  for k in range(3):
    small, large = (dp.render(k, s, 1.0, 0.3, 0.7).sum() for s in (0.5, 1.0))
    assert 3.4 < large / small < 4.6, (k, large / small)


def test_position_moves_the_centroid_linearly_x_right_y_down():
  p = dp.POSITION_VALUES
  for k in range(3):
    along_x = np.array([_centroid(dp.render(k, 1.0, 0.0, x, MID)) for x in p])
    along_y = np.array([_centroid(dp.render(k, 1.0, 0.0, MID, y)) for y in p])
    # 32 px from position 0 to 1 (the centre moves over the central half).
    for moving, fixed in ((along_x[:, 0], along_x[:, 1]),
                          (along_y[:, 1], along_y[:, 0])):
      slope, intercept = np.polyfit(p, moving, 1)
      assert abs(slope - 32) < 0.6, (k, slope)
      assert np.abs(moving - (slope * p + intercept)).max() < 0.6
      assert np.ptp(fixed) < 0.6
  # The square's centre is exactly 16 + 32 * position (pixel centres at i + .5).
  cx, cy = _centroid(dp.render(SQUARE, 1.0, 0.0, 0.0, 1.0))
  assert (cx + 0.5, cy + 0.5) == (16.0, 48.0)


def test_orientation_turns_counter_clockwise_as_displayed():
  for theta in dp.ORIENTATION_VALUES[:20]:
    angle = _principal_axis_degrees(dp.render(ELLIPSE, 1.0, theta, MID, MID))
    # y points down, so a counter-clockwise turn on screen is a negative angle.
    expected = -np.degrees(theta)
    error = (angle - expected + 90) % 180 - 90
    assert abs(error) < 2.5, (theta, angle)
  # The heart's lobes (its centroid side) point up at 0 and left at ~pi/2.
  centre = 16 + 32 * MID - 0.5
  for theta, direction in ((0.0, (0, -1)), (np.pi / 2, (-1, 0)),
                           (np.pi, (0, 1)), (3 * np.pi / 2, (1, 0))):
    cx, cy = _centroid(dp.render(HEART, 1.0, theta, MID, MID))
    offset = np.array([cx - centre, cy - centre])
    assert offset @ np.array(direction) > 1.0, (theta, offset)


def test_orientation_is_periodic_and_the_square_symmetric():
  for x, y in ((MID, MID), (dp.POSITION_VALUES[16], dp.POSITION_VALUES[3])):
    for k in range(3):
      np.testing.assert_array_equal(dp.render(k, 0.8, 2 * np.pi, x, y),
                                    dp.render(k, 0.8, 0.0, x, y))
    # A quarter turn maps the square onto itself; the heart is not symmetric.
    np.testing.assert_array_equal(dp.render(SQUARE, 1.0, np.pi / 2, x, y),
                                  dp.render(SQUARE, 1.0, 0.0, x, y))
    assert (dp.render(HEART, 1.0, np.pi / 2, x, y) !=
            dp.render(HEART, 1.0, 0.0, x, y)).sum() > 20


def test_windowed_rendering_equals_the_whole_frame():
  # Every sprite fits its 32 px window: same pixels as testing all 64 x 64.
  rng = np.random.default_rng(1)
  grid = dp.factor_grid()
  rows = np.concatenate([
      rng.choice(dp.NUM_IMAGES, 1500, replace=False),
      # The largest sprites at the four corners of the position range.
      np.flatnonzero((grid[:, 1] == 5) & np.isin(grid[:, 3], [0, 31]) &
                     np.isin(grid[:, 4], [0, 31]))])
  classes = grid[rows]
  values = dp.factor_values(classes)
  args = (classes[:, 0], *values[:, 1:].T)
  np.testing.assert_array_equal(dp.render_batch(*args),
                                dp.render_batch(*args, window=64))


@pytest.mark.parametrize('args,message', [
    ((3, 1.0, 0.0, 0.5, 0.5), 'shapes must be 0'),
    ((1.5, 1.0, 0.0, 0.5, 0.5), r'shapes must be .*got \[1\.5\]'),
    ((-1, 1.0, 0.0, 0.5, 0.5), 'shapes must be 0'),
    ((0, 1.0, 0.0, 1.5, 0.5), 'positions must be in'),
    ((0, 0.0, 0.0, 0.5, 0.5), 'scales must be in'),
])
def test_bad_factors_raise(args, message):
  with pytest.raises(ValueError, match=message):
    dp.render(*args)


# -----------------------------------------------------------------------------
# The tfds builder and the config.
# -----------------------------------------------------------------------------


@pytest.fixture(scope='module')
def small_builder(tmp_path_factory):
  builder = tfds.builder('dsprites_procedural/small',
                         data_dir=str(tmp_path_factory.mktemp('dsprites')))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return builder


def test_features_are_those_of_tfds_dsprites(tmp_path):
  ours = tfds.builder('dsprites_procedural', data_dir=str(tmp_path))
  theirs = tfds.builder('dsprites', data_dir=str(tmp_path))   # spec only.
  assert ours.info.features.to_json() == theirs.info.features.to_json()
  # The default is the full grid.
  assert ours.builder_config.name == 'full'
  assert tuple(ours.builder_config.strides) == (1, 1, 1, 1, 1)


def test_small_builder_examples(small_builder):
  assert small_builder.info.splits['train'].num_examples == 480
  examples = list(tfds.as_numpy(small_builder.as_dataset(split='train')))
  assert len(examples) == 480
  first = examples[0]
  assert first['image'].shape == (64, 64, 1) and first['image'].dtype == np.uint8
  labels = np.array([[e[f'label_{n}'] for n in dp.FACTOR_NAMES] for e in examples])
  values = np.array([[e[f'value_{n}'] for n in dp.FACTOR_NAMES] for e in examples])
  assert labels.dtype == np.int64 and values.dtype == np.float32
  # Each grid point exactly once, labels indexing the full grid.
  np.testing.assert_array_equal(np.unique(dp.grid_index(labels)),
                                dp.grid_index(dp.factor_grid((1, 5, 8, 8, 8))))
  np.testing.assert_array_equal(values, dp.factor_values(labels).astype(np.float32))
  images = np.stack([e['image'][:, :, 0] for e in examples])
  np.testing.assert_array_equal(images, dp.render_classes(labels))
  assert set(np.unique(images)) == {0, 1}


@pytest.mark.parametrize('variant', ['paper', 'cpu', 'smoke'])
def test_config_is_valid(variant):
  config = dsprites.get_config(variant)
  assert config.dataset.name == 'dsprites_procedural'
  config_validation.validate(config, num_devices=1)
  config_validation.validate(config, num_devices=4)


def test_cpu_variants_share_networks_and_protocol():
  # The dSprites CPU table compares methods on the same encoder geometry,
  # representation width, batch and length.
  from configs import beta_vae_dsprites, wae_dsprites  # pylint: disable=g-import-not-at-top
  latentgan = dsprites.get_config('cpu')
  layout = latentgan.codes
  assert layout.generator_input_dim == layout.noise_dim + sum(layout.categorical) + \
      layout.num_continuous
  for module in (beta_vae_dsprites, wae_dsprites):
    config = module.get_config('cpu')
    config_validation.validate(config, num_devices=1)
    for field in ('latent_dim', 'encoder_features', 'decoder_upsample', 'decoder_features'):
      assert config.model[field] == latentgan.model[field], (module.__name__, field)
    assert (config.batch_size, config.num_train_steps) == (latentgan.batch_size,
                                                           latentgan.num_train_steps)
    assert config.model.encoder_features != module.get_config('paper').model.encoder_features


def test_infovaegan_cpu_variant_follows_the_cpu_protocol():
  # Its own InfoGAN-style networks (the paper's), but the protocol's batch and
  # length and disentanglement_lib's conv widths, as the other 'cpu' variants.
  from configs import infovaegan_dsprites  # pylint: disable=g-import-not-at-top
  latentgan = dsprites.get_config('cpu')
  config = infovaegan_dsprites.get_config('cpu')
  config_validation.validate(config, num_devices=1)
  assert (config.batch_size, config.num_train_steps) == (latentgan.batch_size,
                                                         latentgan.num_train_steps)
  assert tuple(config.model.encoder_features) == tuple(latentgan.model.encoder_features[:4])
  assert config.model.encoder_features != infovaegan_dsprites.get_config('paper').model.encoder_features
  # The bounded continuous MI term of probe P8 (the paper's Eq. 30 draws noise
  # here); the 'paper' variant keeps Eq. 30.
  assert (config.model.mi_variance, config.loss.lambda_cont) == ('unit', 0.1)
  paper = infovaegan_dsprites.get_config('paper')
  assert (paper.model.mi_variance, paper.loss.lambda_cont) == ('learned', 1.0)
