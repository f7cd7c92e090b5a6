"""Builds <dataset>/comparison_results.md of the method comparisons from the committed eval.json files.

  python experiments/results/collect_comparison.py mnist [--into=comparison_1206 SWEEP_ROOT ...]
  python experiments/results/collect_comparison.py dsprites [--into=cpu_1206 SWEEP_ROOT ...]

Rows are the folders <dataset>/<session folder>/<row>/ holding seed<N>/eval.json
(each session's HYPOTHESES.md beside them; session folders: mnist/comparison_*,
dsprites/cpu_*). With sweep roots, first copies each run's eval.json,
sweep_timing.json and metrics.jsonl into <dataset>/<into>/<row>/seed<N>/; then
reads every row (for MNIST also the 5-seed `:best` runs of
mnist/research/teacher) into one table.

Reads and writes files only (no lgae import), so library renames cannot break it;
the mean ± sample-std (ddof 1) tables are formatted as lgae's reporting module
formats them, so the output is unchanged.
"""

import glob
import json
import math
import os
import shutil
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# dataset -> (session folders, eval.json keys in the table, extra rows {name: seed dirs glob}).
DATASETS = {
    'mnist': ('comparison_*',
              ('test_error_hungarian', 'test_error_majority', 'nmi', 'frechet_distance',
               'generated_label_accuracy', 'generated_cosine_similarity', 'train_wall_minutes'),
              {'latentgan_ae_best (E4, 5 seeds)': os.path.join('research', 'teacher', 'seed[0-9]')}),
    'dsprites': ('cpu_*',
                 ('beta_vae_score', 'factor_vae_score', 'mig', 'dci_disentanglement',
                  'dci_completeness', 'dci_informativeness', 'sap', 'recon_mse',
                  'train_wall_minutes'),
                 {}),
}


def _stats(runs, key):
  """(mean, sample std, n) of `key` over runs, skipping missing/None values."""
  values = [float(r[key]) for r in runs if r.get(key) is not None]
  if not values:
    return math.nan, math.nan, 0
  std = statistics.stdev(values) if len(values) > 1 else 0.0
  return statistics.fmean(values), std, len(values)


def markdown_table(runs, keys, label_key='seed', digits=2):
  """One row per run plus a mean ± std row."""
  fmt = lambda v: '–' if v is None else (f'{v:.{digits}f}' if isinstance(v, float) else str(v))
  lines = ['| ' + ' | '.join([label_key, *keys]) + ' |', '|' + '---|' * (len(keys) + 1)]
  for r in runs:
    lines.append('| ' + ' | '.join([str(r.get(label_key)), *(fmt(r.get(k)) for k in keys)]) + ' |')
  cells = []
  for k in keys:
    mean, std, _ = _stats(runs, k)
    cells.append(f'{mean:.{digits}f} ± {std:.{digits}f}')
  lines.append('| **mean ± std** | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def settings_table(runs_by_setting, keys, digits=2):
  """One row per setting: 'mean ± std' of each key over its runs, and n (runs)."""
  lines = ['| setting | n | ' + ' | '.join(keys) + ' |', '|' + '---|' * (len(keys) + 2)]
  for name, runs in runs_by_setting.items():
    cells = []
    for k in keys:
      mean, std, n = _stats(runs, k)
      cells.append('–' if n == 0 else f'{mean:.{digits}f} ± {std:.{digits}f}')
    lines.append(f'| {name} | {len(runs)} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def copy_runs(root, dest_folder):
  for eval_path in glob.glob(os.path.join(root, '*', 'seed*', 'eval.json')):
    seed_dir = os.path.dirname(eval_path)
    row = os.path.basename(os.path.dirname(seed_dir))
    dest = os.path.join(dest_folder, row, os.path.basename(seed_dir))
    os.makedirs(dest, exist_ok=True)
    for name in ('eval.json', 'sweep_timing.json', 'metrics.jsonl'):
      if os.path.exists(os.path.join(seed_dir, name)):
        shutil.copy(os.path.join(seed_dir, name), dest)


def load_row(pattern):
  runs = []
  for seed_dir in sorted(glob.glob(pattern)):
    with open(os.path.join(seed_dir, 'eval.json')) as f:
      run = json.load(f)
    timing = os.path.join(seed_dir, 'sweep_timing.json')
    if os.path.exists(timing):
      with open(timing) as f:
        t = json.load(f)
      run['train_wall_minutes'], run['command'] = t['train_wall_minutes'], t['command']
    run['seed'] = os.path.basename(seed_dir)
    runs.append(run)
  return runs


def main(argv):
  if not argv or argv[0] not in DATASETS:
    raise SystemExit(f'First argument: one of {sorted(DATASETS)}.')
  dataset, into, roots = argv[0], None, []
  for arg in argv[1:]:
    if arg.startswith('--into='):
      into = arg.split('=', 1)[1]
    else:
      roots.append(arg)
  if roots and not into:
    raise SystemExit('Give --into=<session folder> with sweep roots: the folder to copy into.')
  base = os.path.join(HERE, dataset)
  sessions, keys, extra = DATASETS[dataset]
  for root in roots:
    copy_runs(root, os.path.join(base, into))
  rows = {}
  for d in sorted(glob.glob(os.path.join(base, sessions, '*'))):
    if glob.glob(os.path.join(d, 'seed*', 'eval.json')):
      session = os.path.basename(os.path.dirname(d)).split('_', 1)[1]
      rows[f'{os.path.basename(d)} ({session})'] = load_row(os.path.join(d, 'seed*'))
  for name, pattern in extra.items():
    rows[name] = load_row(os.path.join(base, pattern))
  out = os.path.join(base, 'comparison_results.md')
  with open(out, 'w') as f:
    f.write('# Comparison runs (mean ± std over seeds; per-run rows below)\n\n')
    f.write(settings_table(rows, keys) + '\n\n')
    for name, runs in rows.items():
      f.write(f'## {name}\n\n{markdown_table(runs, keys)}\n\n')
      for r in runs:
        if 'command' in r:
          f.write(f"- {r['seed']}: `{r['command']}`\n")
      f.write('\n')
  print(open(out).read())


if __name__ == '__main__':
  main(sys.argv[1:])
