"""Where training numbers go: `metrics.jsonl`, `timeline.jsonl`, TensorBoard, and the console.

`timeline.jsonl` holds one line per event of the run's processes ('start',
with the process's own start time; 'prepared', a phase's one-off preparation
and its seconds; 'end'), so that a run's wall time from process start to an
accuracy can be read back across resumes (`lgae.evaluation.reporting`).
"""

import contextlib
import errno
import json
import math
import os
import time
from collections.abc import Iterator

import numpy as np
from absl import logging

from lgae import errors


TIMELINE_FILE = 'timeline.jsonl'
# When lgae was imported: a process's start time where /proc cannot say.
_IMPORTED = time.time()


def process_start_time() -> float:
  """The wall-clock time (s since the epoch) this process started; Linux reads /proc.

  Elsewhere, the time lgae was imported (a few seconds later: the Python and
  library imports before it are not counted).
  """
  try:
    with open('/proc/self/stat') as f:
      after_name = f.read().rsplit(')', 1)[1].split()   # The name may hold spaces.
    ticks = int(after_name[19])   # Field 22, starttime: clock ticks after boot.
    with open('/proc/stat') as f:
      boot = next(int(line.split()[1]) for line in f if line.startswith('btime '))
    return boot + ticks / os.sysconf('SC_CLK_TCK')
  except (OSError, ValueError, IndexError, StopIteration):
    return _IMPORTED


class MetricWriter:
  """Appends one JSON object per call to `<workdir>/metrics.jsonl` and to TensorBoard.

  Args:
    workdir: run directory (created if missing).
    tensorboard: also write TensorBoard event files into `workdir`.
  """

  def __init__(self, workdir: str, *, tensorboard: bool = True):
    os.makedirs(workdir, exist_ok=True)
    self._workdir = workdir
    self.path = os.path.join(workdir, 'metrics.jsonl')
    self._tb = None
    if tensorboard:
      from flax.metrics import tensorboard as flax_tb  # pylint: disable=g-import-not-at-top
      self._tb = flax_tb.SummaryWriter(workdir)

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    # Wall-clock time of the record: time-to-accuracy is read off these.
    record = {'step': int(step), 'time': round(time.time(), 3)}
    record.update({k: _to_json_number(v) for k, v in scalars.items()})
    with self._writing(self.path):
      with open(self.path, 'a') as f:
        f.write(json.dumps(record) + '\n')
    if self._tb is not None:
      with self._writing(self._workdir):
        for k, v in scalars.items():
          self._tb.scalar(k, float(v), int(step))

  def write_event(self, event: str, step: int, **fields) -> None:
    """Appends `{'event', 'step', 'time', **fields}` to `timeline.jsonl`."""
    path = os.path.join(self._workdir, TIMELINE_FILE)
    record = {'event': event, 'step': int(step), 'time': round(time.time(), 3), **fields}
    with self._writing(path):
      with open(path, 'a') as f:
        f.write(json.dumps(record) + '\n')

  def write_image(self, step: int, tag: str, image: np.ndarray) -> None:
    """An [H, W, C] uint8 image to TensorBoard."""
    if self._tb is not None:
      with self._writing(self._workdir):
        self._tb.image(tag, image, int(step))

  def flush(self) -> None:
    if self._tb is not None:
      with self._writing(self._workdir):
        self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      tb, self._tb = self._tb, None
      with self._writing(self._workdir):
        tb.close()

  @contextlib.contextmanager
  def _writing(self, path: str) -> Iterator[None]:
    """A full disk as an OSError naming `path` (TensorFlow says so only in its own error types)."""
    try:
      yield
    except Exception as e:  # pylint: disable=broad-except
      if not errors.is_out_of_space(e):
        raise
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path) from e


def _to_json_number(value) -> float | None:
  value = float(value)
  return value if math.isfinite(value) else None


class ProgressLogger:
  """One console line per log step: step, steps/s, ETA, the main losses."""

  def __init__(self, first_step: int, last_step: int):
    self._first = first_step
    self._last = last_step
    self._start = time.monotonic()
    self._prev_time = self._start
    self._prev_step = first_step

  def steps_per_sec(self, step: int) -> float | None:
    """Rate since the previous call (resets the window); None if no step was timed.

    None right after a (re)start: the window then begins after the first
    step, whose time is mostly compilation.
    """
    now = time.monotonic()
    timed = step - self._prev_step
    rate = timed / max(now - self._prev_time, 1e-9) if timed > 0 else None
    self._prev_time, self._prev_step = now, step
    return rate

  def restart_window(self, step: int) -> None:
    """Starts the next steps/s window now (excludes eval and checkpoint time)."""
    self._prev_time, self._prev_step = time.monotonic(), step
    if self._first == step - 1:
      self._start, self._first = self._prev_time, step

  def log(self, step: int, rate: float | None, scalars: dict[str, float]) -> None:
    elapsed = time.monotonic() - self._start
    done = step - self._first
    eta = (self._last - step) * elapsed / done if done else float('nan')
    losses = ' '.join(f'{k}={v:.4g}' for k, v in scalars.items() if k.endswith('loss'))
    logging.info('step %d/%d | %s steps/s | ETA %s | %s', step, self._last,
                 '?' if rate is None else f'{rate:.2f}', _format_seconds(eta), losses)


def _format_seconds(seconds: float) -> str:
  if not math.isfinite(seconds):
    return '?'
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


class NoWriter:
  """`MetricWriter`'s interface, writing nothing: for processes other than 0.

  In a multi-process run every process computes the same numbers; one copy
  of metrics.jsonl and TensorBoard is enough (and two would interleave).
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, 'metrics.jsonl')   # Named in log lines.

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    del step, scalars

  def write_event(self, event: str, step: int, **fields) -> None:
    del event, step, fields

  def write_image(self, step: int, tag: str, image: np.ndarray) -> None:
    del step, tag, image

  def flush(self) -> None:
    pass

  def close(self) -> None:
    pass
