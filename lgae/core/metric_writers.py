"""Where training numbers go: `metrics.jsonl`, TensorBoard, and the console."""

import json
import math
import os
import time

import numpy as np
from absl import logging


class MetricWriter:
  """Appends one JSON object per call to `<workdir>/metrics.jsonl` and to TensorBoard.

  Args:
    workdir: run directory (created if missing).
    tensorboard: also write TensorBoard event files into `workdir`.
  """

  def __init__(self, workdir: str, *, tensorboard: bool = True):
    os.makedirs(workdir, exist_ok=True)
    self.path = os.path.join(workdir, 'metrics.jsonl')
    self._tb = None
    if tensorboard:
      from flax.metrics import tensorboard as flax_tb  # pylint: disable=g-import-not-at-top
      self._tb = flax_tb.SummaryWriter(workdir)

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    # Wall-clock time of the record: time-to-accuracy is read off these.
    record = {'step': int(step), 'time': round(time.time(), 3)}
    record.update({k: _to_json_number(v) for k, v in scalars.items()})
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.scalar(k, float(v), int(step))

  def write_image(self, step: int, tag: str, image: np.ndarray) -> None:
    """An [H, W, C] uint8 image to TensorBoard."""
    if self._tb is not None:
      self._tb.image(tag, image, int(step))

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None


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

  def steps_per_sec(self, step: int) -> float:
    """Rate since the previous call (resets the window)."""
    now = time.monotonic()
    rate = (step - self._prev_step) / max(now - self._prev_time, 1e-9)
    self._prev_time, self._prev_step = now, step
    return rate

  def restart_window(self, step: int) -> None:
    """Starts the next steps/s window now (excludes eval and checkpoint time)."""
    self._prev_time, self._prev_step = time.monotonic(), step
    if self._first == step - 1:
      self._start, self._first = self._prev_time, step

  def log(self, step: int, rate: float, scalars: dict[str, float]) -> None:
    elapsed = time.monotonic() - self._start
    done = step - self._first
    eta = (self._last - step) * elapsed / done if done else float('nan')
    losses = ' '.join(f'{k}={v:.4g}' for k, v in scalars.items() if k.endswith('loss'))
    logging.info('step %d/%d | %.2f steps/s | ETA %s | %s', step, self._last, rate,
                 _format_seconds(eta), losses)


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

  def write_image(self, step: int, tag: str, image: np.ndarray) -> None:
    del step, tag, image

  def flush(self) -> None:
    pass

  def close(self) -> None:
    pass
