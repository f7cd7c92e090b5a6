r"""Trains and evaluates one config over several seeds, then aggregates a table.

  python -m experiments.sweep --config=configs/mnist.py --seeds=0,1,2,3,4 \
      --root=/tmp/mnist_sweep [--config.num_epochs=5 ...]

Each seed runs `experiments.main` (resumable: re-running the sweep continues
unfinished seeds) and then `experiments.evaluate` in its own process, in
`<root>/seed<N>`. `--config.*` overrides are forwarded to every run. Writes
`<root>/results.json` and `<root>/results.md`. Runs go one at a time unless
--parallel says otherwise: each run already uses every core through XLA.
"""

import concurrent.futures
import json
import os
import subprocess
import sys
import time

from absl import app, flags

from lgae import reporting

_CONFIG = flags.DEFINE_string('config', None, 'Config file path (forwarded to experiments.main).')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2', '3', '4'], 'Seeds to run.')
_ROOT = flags.DEFINE_string('root', None, 'Directory holding one workdir per seed.')
_PARALLEL = flags.DEFINE_integer('parallel', 1, 'Runs at a time.')
flags.mark_flags_as_required(['config', 'root'])

KEYS = ('test_error_hungarian', 'test_error_majority', 'nmi', 'ari', 'num_clusters_used',
        'recon_mse', 'frechet_distance', 'generated_label_accuracy', 'train_wall_minutes')


def _run_seed(seed: str, overrides: list[str]) -> dict:
  workdir = os.path.join(_ROOT.value, f'seed{seed}')
  os.makedirs(workdir, exist_ok=True)
  train_cmd = [sys.executable, '-m', 'experiments.main', f'--config={_CONFIG.value}',
               f'--workdir={workdir}', f'--config.seed={seed}', *overrides]
  with open(os.path.join(workdir, 'sweep.log'), 'a') as log:
    start = time.time()
    subprocess.run(train_cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
    wall = (time.time() - start) / 60
    subprocess.run([sys.executable, '-m', 'experiments.evaluate', f'--workdir={workdir}'],
                   stdout=log, stderr=subprocess.STDOUT, check=True)
  with open(os.path.join(workdir, 'eval.json')) as f:
    result = json.load(f)
  timing = os.path.join(workdir, 'sweep_timing.json')
  # A resumed seed keeps the wall time of its first full run.
  if os.path.exists(timing):
    with open(timing) as f:
      wall = json.load(f).get('train_wall_minutes', wall)
  else:
    with open(timing, 'w') as f:
      json.dump({'train_wall_minutes': wall, 'command': ' '.join(train_cmd)}, f)
  result.update(seed=int(seed), train_wall_minutes=wall)
  print(f'seed {seed}: ' + ', '.join(f'{k}={result.get(k)}' for k in KEYS), flush=True)
  return result


def main(argv):
  overrides = [a for a in argv[1:] if a.startswith('--config.')]
  unknown = [a for a in argv[1:] if not a.startswith('--config.')]
  if unknown:
    raise app.UsageError(f'Unexpected arguments: {unknown}')
  os.makedirs(_ROOT.value, exist_ok=True)
  with concurrent.futures.ThreadPoolExecutor(max_workers=_PARALLEL.value) as pool:
    results = list(pool.map(lambda s: _run_seed(s, overrides), _SEEDS.value))
  summary = {'config': _CONFIG.value, 'overrides': overrides, 'runs': results,
             'aggregate': reporting.aggregate(results, KEYS)}
  with open(os.path.join(_ROOT.value, 'results.json'), 'w') as f:
    json.dump(summary, f, indent=2)
  table = reporting.markdown_table(results, KEYS)
  with open(os.path.join(_ROOT.value, 'results.md'), 'w') as f:
    f.write(f'config: {_CONFIG.value} {" ".join(overrides)}\n\n{table}\n')
  print(table)


def _parse_flags(argv):
  """Parses sweep flags; leaves --config.* overrides in argv for main()."""
  return flags.FLAGS(argv, known_only=True)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
