"""Builds comparison_results.md of the issue-12/13 comparison from the committed eval.json files.

  python experiments/results/mnist/collect_comparison.py [--into=comparison_1206 SWEEP_ROOT ...]

Rows are the folders comparison_<session>/<row>/ holding seed<N>/eval.json
(each session's HYPOTHESES.md beside them). With sweep roots, first copies
each run's eval.json, sweep_timing.json and metrics.jsonl into
comparison_<session>/<row>/seed<N>/; then reads every row (and the 5-seed
`:best` runs of experiments/results/mnist/research/teacher) into one table.
"""

import glob
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', '..'))
from lgae import reporting  # pylint: disable=g-import-not-at-top,wrong-import-position

KEYS = ('test_error_hungarian', 'test_error_majority', 'nmi', 'frechet_distance',
        'generated_label_accuracy', 'generated_cosine_similarity', 'train_wall_minutes')


def copy_runs(root, into):
  for eval_path in glob.glob(os.path.join(root, '*', 'seed*', 'eval.json')):
    seed_dir = os.path.dirname(eval_path)
    row = os.path.basename(os.path.dirname(seed_dir))
    dest = os.path.join(HERE, into, row, os.path.basename(seed_dir))
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
  into = None
  roots = []
  for arg in argv:
    if arg.startswith('--into='):
      into = arg.split('=', 1)[1]
    else:
      roots.append(arg)
  if roots and not into:
    raise SystemExit('Give --into=comparison_<session> with sweep roots: the folder to copy into.')
  for root in roots:
    copy_runs(root, into)
  rows = {}
  for d in sorted(glob.glob(os.path.join(HERE, 'comparison_*', '*'))):
    if glob.glob(os.path.join(d, 'seed*', 'eval.json')):
      session = os.path.basename(os.path.dirname(d))[len('comparison_'):]
      rows[f'{os.path.basename(d)} ({session})'] = load_row(os.path.join(d, 'seed*'))
  teacher = os.path.join(HERE, 'research', 'teacher', 'seed[0-9]')
  rows['latentgan_ae_best (E4, 5 seeds)'] = load_row(teacher)
  out = os.path.join(HERE, 'comparison_results.md')
  with open(out, 'w') as f:
    f.write('# Comparison runs (mean ± std over seeds; per-run rows below)\n\n')
    f.write(reporting.settings_table(rows, KEYS) + '\n\n')
    for name, runs in rows.items():
      f.write(f'## {name}\n\n{reporting.markdown_table(runs, KEYS)}\n\n')
      for r in runs:
        if 'command' in r:
          f.write(f"- {r['seed']}: `{r['command']}`\n")
      f.write('\n')
  print(open(out).read())


if __name__ == '__main__':
  main(sys.argv[1:])
