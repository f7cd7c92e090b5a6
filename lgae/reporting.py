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
