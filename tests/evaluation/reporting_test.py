"""Seed aggregation: mean, sample std, skipped Nones, table rows."""

import json
import math

import numpy as np
import pytest

from lgae.evaluation import reporting


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
  from absl import app  # pylint: disable=g-import-not-at-top
  for bad in ('no-colon', ':--config.a=1', 'x:--seed=1', 'a/b:'):
    with pytest.raises(app.UsageError):
      sweep.parse_setting(bad)


def _run(seed, score, error):
  return {'seed': seed, 'cluster_neighbour_agreement': score, 'test_error_hungarian': error}


def test_select_per_seed_takes_the_highest_label_free_score():
  by_setting = {'draw1': [_run(0, 0.93, 13.5), _run(1, 0.93, 17.7), _run(2, 0.90, 30.0)],
                'draw2': [_run(0, 0.94, 9.5), _run(1, 0.92, 18.5)]}
  chosen = reporting.select_per_seed(by_setting, 'cluster_neighbour_agreement',
                                     ['draw1', 'draw2'])
  # Seed 2 has no draw2 run: left out rather than chosen from one candidate.
  assert [(r['seed'], r['selected_from'], r['test_error_hungarian']) for r in chosen] == [
      (0, 'draw2', 9.5), (1, 'draw1', 17.7)]
  # Only the candidates named: draw1 alone gives draw1's runs back.
  only = reporting.select_per_seed(by_setting, 'cluster_neighbour_agreement', ['draw1'])
  assert [r['test_error_hungarian'] for r in only] == [13.5, 17.7, 30.0]


def test_select_per_seed_ties_go_to_the_first_setting():
  by_setting = {'a': [_run(0, 0.9, 1.0)], 'b': [_run(0, 0.9, 2.0)]}
  assert reporting.select_per_seed(
      by_setting, 'cluster_neighbour_agreement', ['b', 'a'])[0]['selected_from'] == 'b'


@pytest.mark.parametrize('key, among, match', [
    ('test_error_hungarian', ['a'], 'test-set oracle'),   # reads the labels
    ('cluster_neighbour_agreement', ['zz'], 'unknown settings'),
    ('cluster_neighbour_agreement', [], 'unknown settings'),
])
def test_select_per_seed_refuses_bad_requests(key, among, match):
  with pytest.raises(ValueError, match=match):
    reporting.select_per_seed({'a': [_run(0, 0.9, 1.0)]}, key, among)


def test_select_per_seed_needs_the_score_in_every_candidate():
  by_setting = {'a': [_run(0, 0.9, 1.0)], 'b': [{'seed': 0, 'test_error_hungarian': 2.0}]}
  with pytest.raises(ValueError, match='re-run experiments.evaluate'):
    reporting.select_per_seed(by_setting, 'cluster_neighbour_agreement', ['a', 'b'])


def test_sweep_reports_the_selected_restarts(tmp_path, monkeypatch):
  """The sweep CLI's --select_by adds a 'selected' setting to results.json and results.md."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from experiments import sweep  # pylint: disable=g-import-not-at-top
  canned = {('draw1', '0'): (0.93, 13.5), ('draw1', '1'): (0.93, 17.7),
            ('draw2', '0'): (0.94, 9.5), ('draw2', '1'): (0.92, 18.5)}

  def fake_run(setting, seed, overrides):
    del overrides
    score, error = canned[(setting, seed)]
    return {'setting': setting, 'seed': int(seed), 'cluster_neighbour_agreement': score,
            'test_error_hungarian': error}

  monkeypatch.setattr(sweep, '_run', fake_run)
  argv = ['sweep', '--config=configs/mnist.py', f'--root={tmp_path}', '--seeds=0,1',
          '--setting=draw1:', '--setting=draw2:--config.seed=1{seed}',
          '--select_by=cluster_neighbour_agreement']
  saved = {name: flags.FLAGS[name].value for name in ('config', 'root', 'seeds', 'setting',
                                                      'select_by', 'select_among')}
  # Other CLI modules imported by other tests in this worker (experiments.main,
  # prepare_data, ...) have required flags of their own in absl's global FLAGS;
  # their validators would refuse this parse, as they never do in a real
  # `python -m experiments.sweep` process.
  for name, flag in flags.FLAGS._flags().items():  # pylint: disable=protected-access
    if name not in saved:
      monkeypatch.setattr(flag, 'validators', [])
  try:
    sweep.main(sweep._parse_flags(argv))
  finally:
    for name, value in saved.items():
      flags.FLAGS[name].value = value
  results = json.loads((tmp_path / 'results.json').read_text())
  selected = results['aggregate']['selected']['test_error_hungarian']
  assert (selected['mean'], selected['n']) == (pytest.approx((9.5 + 17.7) / 2), 2)
  assert '| 0 (draw2) |' in (tmp_path / 'results.md').read_text()


def test_run_time_counts_from_process_start_and_skips_the_time_between_processes():
  timeline = [{'event': 'start', 'step': 0, 'time': 110.0, 'process_start': 100.0},
              {'event': 'end', 'step': 4, 'time': 200.0},
              {'event': 'start', 'step': 4, 'time': 1010.0, 'process_start': 1000.0}]
  records = [{'step': 2, 'time': 150.0, 'eval/err': 9.0},
             {'step': 4, 'time': 190.0, 'eval/err': 6.0},
             {'step': 6, 'time': 1060.0, 'eval/err': 4.0}]
  # The first process lived 100 s (100 -> 200); the second reached 4.0 60 s after it started.
  assert reporting.run_time_to_threshold(timeline, records, 'eval/err', 5.0) == {
      'minutes': 160 / 60, 'step': 6, 'value': 4.0}
  assert reporting.run_time_to_threshold(timeline, records, 'eval/err', 9.0)['minutes'] == 50 / 60
  assert reporting.run_time_to_threshold(timeline, records, 'eval/err', 1.0) is None
  # A run without a timeline (older runs): from its first record.
  assert reporting.run_time_to_threshold([], records, 'eval/err', 6.0)['minutes'] == 40 / 60
