"""Regenerates table.md: the teacher ablation, paired per seed (run from the repository root).

  python experiments/results/mnist/teacher_ablation_1207/table.py

Reads only committed files: this folder's nogan_s*/ ({eval,teacher_vs_q}.json) and best_s*/eval.json,
seed 0's fresh `:best` run on the same machine (time_to_accuracy_idle_1207/tta_cheap_s0/eval.json), the older-code `:best` runs
(research/teacher/seed*/eval.json), `:neighbour` (best_5seeds/seed*/eval.json) and the literal recipe
(comparison_1206/literal/seed*/eval.json).
"""

import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.path.dirname(HERE)
SEEDS = (0, 1, 2, 3, 4)


def _load(*parts):
  path = os.path.join(*parts)
  return json.load(open(path)) if os.path.exists(path) else None


def _error(record, key='test_error_hungarian'):
  return None if record is None else float(record[key])


def _d_eval(seed):
  """(d) on today's code and the same autoencoder as (a)/(b): best_sN here; seed 0's fresh run."""
  if seed == 0:   # a fresh :best seed 0 on the same machine as nogan_s0 (README, amendment 2).
    return _load(MNIST, 'time_to_accuracy_idle_1207', 'tta_cheap_s0', 'eval.json')
  return _load(HERE, f'best_s{seed}', 'eval.json')


def rows():
  out = {}
  for s in SEEDS:
    tvq = _load(HERE, f'nogan_s{s}', 'teacher_vs_q.json')
    out[s] = {
        'a_teacher_test': _error(tvq, 'teacher_test_error'),
        'b_nogan_test': _error(_load(HERE, f'nogan_s{s}', 'eval.json')),
        'c_neighbour_test': _error(_load(MNIST, 'best_5seeds', f'seed{s}', 'eval.json')),
        'd_best_test': _error(_d_eval(s)),
        'd_committed_test': _error(_load(MNIST, 'research', 'teacher', f'seed{s}', 'eval.json')),
        'e_literal_test': _error(_load(MNIST, 'comparison_1206', 'literal', f'seed{s}', 'eval.json')),
        'a_teacher_train': _error(tvq, 'teacher_train_error'),
        'b_nogan_train': _error(tvq, 'q_train_error'),
        'b_agrees_train': _error(tvq, 'q_agrees_with_teacher_train'),
    }
  return out


def _fmt(v):
  return '—' if v is None else f'{v:.2f}'


def _summary(values):
  v = [x for x in values if x is not None]
  if not v:
    return '—'
  return f'{np.mean(v):.2f} ± {np.std(v, ddof=1):.2f} (n={len(v)})' if len(v) > 1 else f'{v[0]:.2f} (n=1)'


def main():
  table = rows()
  cols = list(next(iter(table.values())))
  lines = ['| seed | ' + ' | '.join(cols) + ' | d − a | b − a | d − b |',
           '|' + '---|' * (len(cols) + 4)]
  diffs = {'d − a': [], 'b − a': [], 'd − b': []}
  for s, r in table.items():
    pair = lambda x, y: None if r[x] is None or r[y] is None else r[x] - r[y]
    d = {'d − a': pair('d_best_test', 'a_teacher_test'), 'b − a': pair('b_nogan_test', 'a_teacher_test'),
         'd − b': pair('d_best_test', 'b_nogan_test')}
    for k, v in d.items():
      diffs[k].append(v)
    lines.append(f'| {s} | ' + ' | '.join(_fmt(r[c]) for c in cols) + ' | '
                 + ' | '.join(('—' if v is None else f'{v:+.2f}') for v in d.values()) + ' |')
  lines.append('| **mean ± std** | ' + ' | '.join(_summary([r[c] for r in table.values()]) for c in cols)
               + ' | ' + ' | '.join(_summary(v) for v in diffs.values()) + ' |')
  text = ('Test / train Hungarian error (%), paired by seed; (a) teacher alone, (b) Q on the teacher without '
          'the GAN, (c) `:neighbour`, (d) `:best`, (e) the literal recipe. Differences in points '
          '(negative: the first is better). d_committed: the `:best` runs of older code (research/teacher; '
          'seeds 0-2 on autoencoders trained by older code), not paired.\n\n' + '\n'.join(lines) + '\n')
  open(os.path.join(HERE, 'table.md'), 'w').write(text)
  print(text)


if __name__ == '__main__':
  main()
