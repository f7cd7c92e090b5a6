r"""Prints a run's end-to-end wall time to an accuracy, read from what the run logged.

  python -m experiments.time_to_accuracy --workdir=/tmp/mnist
  python -m experiments.time_to_accuracy --workdir=A --workdir=B --thresholds=5,3.5

For each workdir: the wall minutes from the start of the run's first process
(data checks, compilation, the autoencoder stage, the latent cache and teacher,
the latent-GAN stage and every evaluation before it) to the first in-training
evaluation whose `--key` is at or below each threshold, summed over the
processes of a stopped and resumed run (the time between them not counted),
then the last evaluation. Read from `metrics.jsonl` and `timeline.jsonl`
(`lgae.core.metric_writers`); a run evaluates during training only with
`config.eval_every_steps` > 0, so the figure is as fine as that interval.
"""

import json
import os

from absl import app, flags

from experiments import cli
from lgae import errors
from lgae.core import metric_writers
from lgae.evaluation import reporting

_WORKDIRS = flags.DEFINE_multi_string('workdir', None, 'Run directory (repeatable).')
_KEY = flags.DEFINE_string('key', 'test_error_hungarian', 'Evaluation score, lower is better.')
_THRESHOLDS = flags.DEFINE_list('thresholds', ['5', '3.5'], 'Levels to reach (same unit as --key).')
flags.mark_flags_as_required(['workdir'])


class RunLogError(errors.UserError):
  """The workdir holds no readable run log."""


def _read_jsonl(path: str) -> list[dict]:
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    try:
      # A line cut short by a kill is skipped: the lines before it are whole.
      return [json.loads(line) for line in f if line.strip().endswith('}')]
    except json.JSONDecodeError as e:
      raise RunLogError(f'{path} is not a metrics log ({e}).') from e


def report(workdir: str, key: str, thresholds: list[float]) -> list[str]:
  """The lines printed for one workdir."""
  records = _read_jsonl(os.path.join(workdir, 'metrics.jsonl'))
  timeline = _read_jsonl(os.path.join(workdir, metric_writers.TIMELINE_FILE))
  metric = f'eval/{key}'
  evals = [r for r in records if r.get(metric) is not None]
  if not evals:
    raise RunLogError(f'{workdir} has no evaluation of {key} in its metrics.jsonl; train with '
                      '--config.eval_every_steps=N (N > 0) to time a run to an accuracy.')
  starts = sum(e.get('event') == 'start' for e in timeline)
  origin = (f'{starts} process start(s)' if starts else
            'no timeline.jsonl (an older run): minutes count from its first record')
  lines = [f'{workdir}: {origin}']
  for threshold in thresholds:
    hit = reporting.run_time_to_threshold(timeline, records, metric, threshold)
    lines.append(f'  {key} <= {threshold:g}: ' + (
        'not reached' if hit is None else
        f"{hit['minutes']:.1f} min (step {hit['step']}, {hit['value']:.4g})"))
  last = evals[-1]
  lines.append(f"  last evaluation: {key} = {last[metric]:.4g} at step {last['step']}, "
               f"{reporting.run_minutes(timeline, records, last['time']):.1f} min")
  return lines


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    thresholds = [float(t) for t in _THRESHOLDS.value]
  except ValueError:
    cli.fail(f'--thresholds={",".join(_THRESHOLDS.value)}: give numbers, e.g. 5,3.5.')
  for workdir in _WORKDIRS.value:
    if not os.path.isdir(workdir):
      cli.fail(f'--workdir={workdir} is not a directory written by experiments.main.')
  for workdir in _WORKDIRS.value:
    print('\n'.join(report(workdir, _KEY.value, thresholds)), flush=True)


if __name__ == '__main__':
  cli.run(main)
