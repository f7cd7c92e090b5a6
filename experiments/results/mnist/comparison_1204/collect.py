"""Builds results.md of the issue-12/13 comparison from the eval.json files in this folder.

  python experiments/results/mnist/comparison_1204/collect.py [SWEEP_ROOT ...]

With sweep roots, first copies each run's eval.json, sweep_timing.json and
metrics.jsonl here (<row>/seed<N>/); then reads every row folder (and the
5-seed `:best` runs of experiments/results/mnist/research/teacher) into one table.
"""

import glob
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', '..', '..'))
from lgae import reporting  # pylint: disable=g-import-not-at-top,wrong-import-position

KEYS = ('test_error_hungarian', 'test_error_majority', 'nmi', 'frechet_distance',
        'generated_label_accuracy', 'generated_cosine_similarity', 'train_wall_minutes')


def copy_runs(root):
  for eval_path in glob.glob(os.path.join(root, '*', 'seed*', 'eval.json')):
    seed_dir = os.path.dirname(eval_path)
    row = os.path.basename(os.path.dirname(seed_dir))
    dest = os.path.join(HERE, row, os.path.basename(seed_dir))
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


def main(roots):
  for root in roots:
    copy_runs(root)
  rows = {os.path.basename(d): load_row(os.path.join(d, 'seed*'))
          for d in sorted(glob.glob(os.path.join(HERE, '*')))
          if glob.glob(os.path.join(d, 'seed*', 'eval.json'))}
  teacher = os.path.join(HERE, '..', 'research', 'teacher', 'seed[0-9]')
  rows['latentgan_ae_best (E4, 5 seeds)'] = load_row(teacher)
  with open(os.path.join(HERE, 'results.md'), 'w') as f:
    f.write('# Comparison runs (mean ± std over seeds; per-run rows below)\n\n')
    f.write(reporting.settings_table(rows, KEYS) + '\n\n')
    for name, runs in rows.items():
      f.write(f'## {name}\n\n{reporting.markdown_table(runs, KEYS)}\n\n')
      for r in runs:
        if 'command' in r:
          f.write(f"- {r['seed']}: `{r['command']}`\n")
      f.write('\n')
  print(open(os.path.join(HERE, 'results.md')).read())


if __name__ == '__main__':
  main(sys.argv[1:])
