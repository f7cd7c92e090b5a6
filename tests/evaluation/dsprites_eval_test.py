"""dSprites through lgae's pipeline and evaluation: pixel scale, factors, disentanglement keys.

Uses `dsprites_procedural/small` (480 images rendered here, no download).
"""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import dsprites
from experiments import evaluate as evaluate_cli
from lgae import train
from lgae.data import input_pipeline
from lgae.evaluation import run as evaluation
from lgae.data import dsprites_procedural as dp


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('dsprites_tfds'))
  tfds.builder('dsprites_procedural/small', data_dir=path).download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return path


def _config(data_dir):
  config = dsprites.get_config('smoke')
  config.dataset.name = 'dsprites_procedural/small'
  config.dataset.data_dir = data_dir
  config.dataset.train_split = 'train'
  config.dataset.eval_split = 'train'   # all 480: enough rows for every metric.
  config.eval_batch_size = 96
  return config


def test_factor_names_come_from_the_tfds_features(data_dir):
  config = _config(data_dir)
  assert set(input_pipeline.factor_names(config)) == {f'label_{n}' for n in dp.FACTOR_NAMES}
  mnist_like = _config(data_dir)
  mnist_like.dataset.name = 'mnist'
  assert input_pipeline.factor_names(mnist_like) == ()


def test_binary_images_become_black_and_white_and_keep_their_factors(data_dir):
  config = _config(data_dir)
  names = input_pipeline.factor_names(config)
  batch = next(input_pipeline.eval_iterator(config))
  # Stored 0/1: with pixel_max=1 a white pixel is 1.0 (it would be -0.99 read as 0..255).
  assert set(np.unique(batch['image'])) == {-1.0, 1.0}
  assert batch['factors'].shape == (config.eval_batch_size, len(names))
  # The factors are those that render the image (the builder's own renderer).
  order = [names.index(f'label_{n}') for n in dp.FACTOR_NAMES]
  rendered = dp.render_classes(batch['factors'][:, order])
  np.testing.assert_array_equal(rendered, (batch['image'][..., 0] > 0).astype(rendered.dtype))
  train_batch = next(input_pipeline.train_iterator(config))
  assert set(np.unique(train_batch['image'])) == {-1.0, 1.0}


def test_disentanglement_scores_of_a_perfect_code_are_high():
  rng = np.random.default_rng(0)
  grid = dp.factor_grid((1, 5, 8, 8, 8))   # the small grid: shape, scale, orient., x, y
  codes = grid.astype(np.float32) + 0.01 * rng.normal(size=grid.shape)
  scores = evaluation.disentanglement_scores(codes, grid, seed=0)
  assert set(scores) == set(evaluation.DISENTANGLEMENT_KEYS)
  assert scores['beta_vae_score'] > 0.9 and scores['factor_vae_score'] > 0.9
  assert scores['mig'] > 0.8 and scores['dci_disentanglement'] > 0.8
  # A code that ignores the factors scores low where the metric has a floor at 0.
  noise = rng.normal(size=grid.shape).astype(np.float32)
  bad = evaluation.disentanglement_scores(noise, grid, seed=0)
  assert bad['mig'] < 0.1 and bad['dci_disentanglement'] < 0.3


def test_constant_factors_are_dropped_and_tiny_splits_skipped():
  grid = dp.factor_grid((1, 5, 8, 8, 8))
  with_constant = np.concatenate([grid, np.zeros((len(grid), 1), grid.dtype)], axis=1)
  codes = grid.astype(np.float32)
  assert evaluation.disentanglement_scores(codes, with_constant, 0) == (
      evaluation.disentanglement_scores(codes, grid, 0))
  assert evaluation.disentanglement_scores(codes[:1], grid[:1], 0) == {}


@pytest.mark.slow
def test_training_then_evaluate_writes_the_seven_keys(data_dir, tmp_path):
  config = _config(data_dir)
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(config, workdir)
  scores = evaluate_cli.run(workdir)
  with open(f'{workdir}/eval.json') as f:
    assert json.load(f) == scores
  for key in evaluation.DISENTANGLEMENT_KEYS:
    assert isinstance(scores[key], float) and np.isfinite(scores[key]), key
  assert scores['test_error_hungarian'] is None   # no class label: no clustering score.


def test_prepare_renders_dsprites_without_source_files(tmp_path):
  from experiments import prepare_data  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / 'tfds')
  # The CLI's --dataset=dsprites route, on the small grid to stay fast.
  dataset_dir = dp.prepare(path, 'small')
  assert tfds.builder('dsprites_procedural/small', data_dir=path).info.splits[
      'train'].num_examples == 480
  assert dp.prepare(path, 'small') == dataset_dir   # idempotent.
  assert set(prepare_data._RENDERED) == {'dsprites', 'dsprites_procedural'}  # pylint: disable=protected-access
  assert prepare_data._RENDERED['dsprites'] is dp.prepare  # pylint: disable=protected-access
