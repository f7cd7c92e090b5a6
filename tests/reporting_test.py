"""Seed aggregation: mean, sample std, skipped Nones, table rows."""

import math

import numpy as np

from lgae import reporting


def test_aggregate_mean_and_sample_std():
  runs = [{'err': 2.0}, {'err': 4.0}, {'err': 6.0}, {'err': None}]
  stats = reporting.aggregate(runs, ['err', 'missing'])
  assert stats['err']['mean'] == 4.0
  assert math.isclose(stats['err']['std'], 2.0)  # ddof=1: sqrt((4+0+4)/2)
  assert (stats['err']['min'], stats['err']['max'], stats['err']['n']) == (2.0, 6.0, 3)
  assert stats['missing']['n'] == 0 and np.isnan(stats['missing']['mean'])


def test_single_run_has_zero_std():
  assert reporting.aggregate([{'a': 1.5}], ['a'])['a']['std'] == 0.0


def test_markdown_table_rows():
  runs = [{'seed': 0, 'err': 1.0}, {'seed': 1, 'err': 3.0}]
  table = reporting.markdown_table(runs, ['err'])
  lines = table.splitlines()
  assert lines[0] == '| seed | err |'
  assert lines[2] == '| 0 | 1.00 |'
  assert lines[-1] == '| **mean ± std** | 2.00 ± 1.41 |'


def test_time_to_threshold():
  records = [{'step': 1, 'time': 100.0, 'loss': 1.0},
             {'step': 2, 'time': 160.0, 'eval/err': 9.0},
             {'step': 3, 'time': 220.0, 'eval/err': 4.0},
             {'step': 4, 'time': 280.0, 'eval/err': 2.0}]
  assert reporting.time_to_threshold(records, 'eval/err', 5.0) == 2.0
  assert reporting.time_to_threshold(records, 'eval/err', 3.0) == 3.0
  assert reporting.time_to_threshold(records, 'eval/err', 1.0) is None


def test_settings_table_one_row_per_setting():
  table = reporting.settings_table(
      {'a': [{'err': 1.0}, {'err': 3.0}], 'b': [{'err': None}]}, ['err'])
  lines = table.splitlines()
  assert lines[0] == '| setting | n | err |'
  assert lines[2] == '| a | 2 | 2.00 ± 1.41 |'
  assert lines[3] == '| b | 1 | – |'


def test_sweep_parses_settings():
  from experiments import sweep  # pylint: disable=g-import-not-at-top
  assert sweep.parse_setting("nb:--config.loss.neighbour_weight=1 --config.seed=2") == (
      'nb', ['--config.loss.neighbour_weight=1', '--config.seed=2'])
  assert sweep.parse_setting('literal:') == ('literal', [])
  import pytest  # pylint: disable=g-import-not-at-top
  from absl import app  # pylint: disable=g-import-not-at-top
  for bad in ('no-colon', ':--config.a=1', 'x:--seed=1', 'a/b:'):
    with pytest.raises(app.UsageError):
      sweep.parse_setting(bad)
