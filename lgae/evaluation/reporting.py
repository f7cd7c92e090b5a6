"""Aggregating per-seed results into mean ± std tables (pure functions)."""

import math
from collections.abc import Sequence

import numpy as np

# The Table 1 figures of the paper, for side-by-side reporting.
PAPER_TABLE1 = {'InfoGAN (K=10)': '5 ± 0.01', 'AAE (K=32)': '4.10 ± 1.13',
                'LatentGAN-AE (paper, K=10)': '2.38 ± 0.38'}


def aggregate(runs: Sequence[dict], keys: Sequence[str]) -> dict[str, dict[str, float]]:
  """Mean, sample std (ddof=1), min, max and count of each key over runs.

  Missing or None values are skipped (count says how many were used).
  """
  out = {}
  for key in keys:
    values = np.asarray([r[key] for r in runs if r.get(key) is not None], np.float64)
    if values.size == 0:
      out[key] = {'mean': math.nan, 'std': math.nan, 'min': math.nan, 'max': math.nan, 'n': 0}
      continue
    out[key] = {'mean': float(values.mean()),
                'std': float(values.std(ddof=1)) if values.size > 1 else 0.0,
                'min': float(values.min()), 'max': float(values.max()), 'n': int(values.size)}
  return out


def markdown_table(runs: Sequence[dict], keys: Sequence[str], *, label_key: str = 'seed',
                   digits: int = 2) -> str:
  """One row per run plus a mean ± std row."""
  fmt = lambda v: '–' if v is None else (f'{v:.{digits}f}' if isinstance(v, float) else str(v))
  lines = ['| ' + ' | '.join([label_key, *keys]) + ' |', '|' + '---|' * (len(keys) + 1)]
  for r in runs:
    lines.append('| ' + ' | '.join([str(r.get(label_key)), *(fmt(r.get(k)) for k in keys)]) + ' |')
  stats = aggregate(runs, keys)
  lines.append('| **mean ± std** | ' + ' | '.join(
      f"{stats[k]['mean']:.{digits}f} ± {stats[k]['std']:.{digits}f}" for k in keys) + ' |')
  return '\n'.join(lines)


def time_to_threshold(records: Sequence[dict], key: str, threshold: float) -> float | None:
  """Minutes from the first record until `key` first falls below `threshold`.

  Args:
    records: metrics.jsonl records (with 'time' in seconds), in file order.
    key: e.g. 'eval/test_error_hungarian'.
    threshold: the level to go under.

  Returns:
    Minutes, or None if `key` never goes below `threshold`.
  """
  timed = [r for r in records if 'time' in r]
  if not timed:
    return None
  start = timed[0]['time']
  for r in timed:
    if r.get(key) is not None and r[key] < threshold:
      return (r['time'] - start) / 60
  return None


def alive_seconds(timeline: Sequence[dict], times: Sequence[float], until: float) -> float:
  """Seconds the run's processes were alive from the first one's start until `until`.

  Args:
    timeline: `timeline.jsonl` events; each 'start' has the process's
      `process_start` (s since the epoch).
    times: the times of everything the run wrote (metrics records and
      timeline events); a process that ended is taken to have lived until
      the last of them before the next process started.
    until: a time inside one of the processes' lives.

  Time between a process's end and the next one's start (a run stopped and
  resumed later) is not counted.
  """
  starts = sorted(e['process_start'] for e in timeline if e.get('event') == 'start')
  total = 0.0
  for i, start in enumerate(starts):
    if start > until:
      break
    following = starts[i + 1] if i + 1 < len(starts) else float('inf')
    if until < following:
      return total + (until - start)
    total += max([t for t in times if start <= t < following], default=start) - start
  return total


def run_time_to_threshold(timeline: Sequence[dict], records: Sequence[dict], key: str,
                          threshold: float) -> dict | None:
  """The first record with `key` <= `threshold`, and the run's wall minutes to it.

  Minutes are `alive_seconds` from process start (data checks, compilation,
  every phase and evaluation before it included); without a timeline (runs
  that predate it) they count from the first record instead.

  Returns:
    {'minutes', 'step', 'value'}, or None if `key` never reaches `threshold`.
  """
  for r in records:
    if r.get(key) is not None and r[key] <= threshold:
      return {'minutes': run_minutes(timeline, records, r['time']), 'step': r['step'],
              'value': r[key]}
  return None


def run_minutes(timeline: Sequence[dict], records: Sequence[dict], until: float) -> float:
  """The run's wall minutes until `until`: `alive_seconds`, or from the first record without a timeline."""
  times = [r['time'] for r in records if 'time' in r] + [e['time'] for e in timeline]
  if any(e.get('event') == 'start' for e in timeline):
    return alive_seconds(timeline, times, until) / 60
  return (until - min(times)) / 60


def settings_table(runs_by_setting: dict[str, Sequence[dict]], keys: Sequence[str],
                   digits: int = 2) -> str:
  """One row per setting: 'mean ± std' of each key over its runs, and n (runs)."""
  lines = ['| setting | n | ' + ' | '.join(keys) + ' |', '|' + '---|' * (len(keys) + 2)]
  for name, runs in runs_by_setting.items():
    stats = aggregate(runs, keys)
    cells = [('–' if stats[k]['n'] == 0 else
              f"{stats[k]['mean']:.{digits}f} ± {stats[k]['std']:.{digits}f}") for k in keys]
    lines.append(f'| {name} | {len(runs)} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


# Scores computed without the labels, so choosing among runs by them is model selection a user
# without labels can do (experiments/docs/research_log.md, "Seed robustness"); higher is better
# for each.
LABEL_FREE_SELECTION_KEYS = ('cluster_neighbour_agreement',)


def select_per_seed(runs_by_setting: dict[str, Sequence[dict]], score_key: str,
                    among: Sequence[str]) -> list[dict]:
  """For each seed, the run of `among`'s settings with the highest label-free `score_key`.

  Restarts (e.g. several latent-GAN draws on one seed's autoencoder, one setting per draw)
  are turned into one result per seed, chosen without looking at the labels.

  Args:
    runs_by_setting: setting name -> its runs (dicts with 'seed' and the eval keys).
    score_key: one of LABEL_FREE_SELECTION_KEYS.
    among: the settings that are candidates for every seed.

  Returns:
    One run per seed present in every candidate setting, in seed order: a copy of the chosen
    run with 'selected_from' (its setting) added. Seeds some setting lacks are left out.
  """
  if score_key not in LABEL_FREE_SELECTION_KEYS:
    raise ValueError(f'select_by={score_key!r}: choose among {LABEL_FREE_SELECTION_KEYS}; '
                     'selecting by a score that reads the labels would report a test-set oracle.')
  missing = [name for name in among if name not in runs_by_setting]
  if missing or not among:
    raise ValueError(f'select_among names unknown settings {missing} '
                     f'(settings: {sorted(runs_by_setting)}).')
  by_seed = {}
  for name in among:
    for run in runs_by_setting[name]:
      by_seed.setdefault(run['seed'], []).append((name, run))
  chosen = []
  for seed in sorted(by_seed):
    candidates = by_seed[seed]
    if len(candidates) != len(among):
      continue
    if any(run.get(score_key) is None for _, run in candidates):
      raise ValueError(f'seed {seed}: a run has no {score_key!r} in its eval.json; re-run '
                       'experiments.evaluate on it.')
    # max() keeps the first of equal scores: ties go to the earlier setting in `among`.
    name, run = max(candidates, key=lambda c: c[1][score_key])
    chosen.append({**run, 'selected_from': name})
  return chosen
