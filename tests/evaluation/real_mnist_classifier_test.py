"""The classifier behind the Frechet distance and generated-label accuracy, on real MNIST.

Runs where real MNIST is available (CI); skipped with the reason elsewhere.
A short training (300 steps, a separate cache) keeps it to about a minute; the
product's cached classifier trains 936 steps (2 epochs) and reports ~98.6 %.
"""

import numpy as np
import pytest

from configs import mnist
from lgae.evaluation import classifier as classifier_lib
from lgae.data import input_pipeline
from lgae.evaluation import metrics


@pytest.fixture(scope='module')
def trained(real_mnist_dir, tmp_path_factory):
  config = mnist.get_config()
  with config.unlocked():
    config.dataset.data_dir = real_mnist_dir
  clf = classifier_lib.get_or_train_classifier(
      config, str(tmp_path_factory.mktemp('clf')), num_steps=300)
  features, predictions, labels = [], [], []
  for batch in input_pipeline.eval_iterator(config):
    keep = batch['mask'] > 0
    f, logits = clf.features_and_logits(batch['image'])
    features.append(np.asarray(f)[keep])
    predictions.append(np.argmax(np.asarray(logits), -1)[keep])
    labels.append(batch['label'][keep])
  return clf, config, np.concatenate(features), np.concatenate(predictions), np.concatenate(labels)


def test_accuracy_floor_and_reported_accuracy_recomputed(trained):
  clf, _, _, predictions, labels = trained
  assert len(labels) == 10_000
  recomputed = 100.0 * np.mean(predictions == labels)
  assert clf.test_accuracy == pytest.approx(recomputed, abs=1e-6)
  # A classifier that cannot tell the digits apart would make the generated
  # label accuracy and the Frechet distance meaningless.
  assert recomputed >= 96.0


def test_feature_scale_separates_same_distribution_from_a_different_one(trained):
  _, config, features, _, labels = trained
  assert np.all(np.isfinite(features)) and features.shape[1] == 128
  rng = np.random.default_rng(0)
  order = rng.permutation(len(features))
  half_a, half_b = features[order[:5000]], features[order[5000:]]
  same = metrics.frechet_distance(half_a, half_b)
  # Digits 0-4 against 5-9: same pixels statistics, different classes.
  low, high = features[labels < 5], features[labels >= 5]
  different = metrics.frechet_distance(low, high)
  assert same < 2.0
  assert different > 50.0 * same
