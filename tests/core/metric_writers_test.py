"""metrics.jsonl records, the steps/s window, and a full disk as one OSError naming the path."""

import errno
import json

import pytest

from lgae.core import metric_writers


def test_records_are_json_lines_with_time_and_non_finite_as_null(tmp_path):
  writer = metric_writers.MetricWriter(str(tmp_path), tensorboard=False)
  writer.write_scalars(2, {'d_loss': 1.5, 'g_loss': float('nan')})
  writer.close()
  [record] = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert record['step'] == 2 and record['d_loss'] == 1.5 and record['g_loss'] is None
  assert record['time'] > 0


def test_no_rate_until_a_step_is_timed():
  progress = metric_writers.ProgressLogger(first_step=5, last_step=10)
  progress.restart_window(6)   # After the first step: its time was mostly compilation.
  assert progress.steps_per_sec(6) is None   # Not 0.0: nothing was timed.
  assert progress.steps_per_sec(8) > 0


class _FullDiskSummaryWriter:
  """TensorBoard's writer as TensorFlow fails on a full disk: its own error type, errno only in text."""

  def scalar(self, *args):
    raise RuntimeError('{{function_node FlushSummaryWriter}} events.out.tfevents; '
                       'No space left on device')

  image = flush = close = scalar


def test_a_full_disk_is_an_os_error_naming_the_path(tmp_path):
  writer = metric_writers.MetricWriter(str(tmp_path), tensorboard=False)
  writer._tb = _FullDiskSummaryWriter()  # pylint: disable=protected-access
  with pytest.raises(OSError) as error:
    writer.write_scalars(1, {'d_loss': 1.0})
  assert error.value.errno == errno.ENOSPC and error.value.filename == str(tmp_path)
  # Any other failure is not disguised as one.
  writer._tb.scalar = lambda *args: (_ for _ in ()).throw(RuntimeError('a bug'))  # pylint: disable=protected-access
  with pytest.raises(RuntimeError, match='a bug'):
    writer.write_scalars(2, {'d_loss': 1.0})
