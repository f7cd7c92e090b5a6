r"""Trains and evaluates a grid of settings x seeds, one run after another, then one table.

  python -m experiments.sweep --config=configs/mnist.py --seeds=0,1,2 --root=/tmp/sweep \
      --setting='literal:' \
      --setting='swap:--config.loss.lambda_disc=1 --config.loss.lambda_cont=0.1' \
      [--config.num_epochs=5 ...]

Each (setting, seed) runs `experiments.main` (with `--config.eval_every_steps=0`:
no evaluation inside the training loop, unless an override asks for one) then
`experiments.evaluate` in its own process and workdir `<root>/<setting>/seed<N>`. Re-running the same command
resumes: finished runs (an eval.json for their final checkpoint) are skipped,
unfinished ones continue from their last checkpoint. `--config.*` flags after
the sweep's own apply to every setting; a setting's overrides come after them.
`{seed}` in an override is replaced by the seed (e.g. a per-seed
`--config.two_stage.autoencoder_workdir=/runs/ae/seed{seed}`). Without
--setting the grid is one setting named 'default'. Writes `<root>/results.json`
(every run's eval.json, command and wall time) and `<root>/results.md`
(mean ± std per setting, then per-run rows). Runs go one at a time unless
--parallel says otherwise: each run already uses every core through XLA.

Restarts with a label-free choice: give each restart its own setting and add
`--select_by=cluster_neighbour_agreement`; the tables gain a setting 'selected',
per seed the candidate with the highest score. E.g. a second latent-GAN draw on
each seed's own autoencoder:

  python -m experiments.sweep --config=configs/mnist.py:best --root=/tmp/r \
      --setting='draw1:' \
      --setting='draw2:--config.seed=1{seed} --config.two_stage.autoencoder_workdir=/tmp/r/draw1/seed{seed}' \
      --select_by=cluster_neighbour_agreement

(with the default --parallel=1, every seed's draw1 finishes before draw2 starts).
"""

import concurrent.futures
import json
import os
import shlex
import subprocess
import sys
import time

from absl import app, flags

from lgae.evaluation import reporting

_CONFIG = flags.DEFINE_string('config', None, 'Config file path (forwarded to experiments.main).')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2', '3', '4'], 'Seeds to run.')
_ROOT = flags.DEFINE_string('root', None, 'Directory holding one workdir per setting and seed.')
_SETTINGS = flags.DEFINE_multi_string(
    'setting', [], "'NAME:--config.a=1 --config.b=2' (overrides may be empty); repeatable.")
_PARALLEL = flags.DEFINE_integer('parallel', 1, 'Runs at a time.')
_SELECT_BY = flags.DEFINE_enum(
    'select_by', None, list(reporting.LABEL_FREE_SELECTION_KEYS),
    'Label-free score: for each seed, also report the run of --select_among with the highest '
    "value, as a setting named 'selected'.")
_SELECT_AMONG = flags.DEFINE_list(
    'select_among', [], 'Settings whose runs are candidates for --select_by (default: all).')
flags.mark_flags_as_required(['config', 'root'])

KEYS = ('test_error_hungarian', 'test_error_majority', 'nmi', 'ari', 'num_clusters_used',
        'recon_mse', 'frechet_distance', 'recon_frechet_distance', 'generated_label_accuracy',
        'generated_cosine_similarity', 'latent_frechet_distance',
        'latent_precision', 'latent_recall', 'latent_kmeans_error', 'latent_gmm_error',
        'cluster_neighbour_agreement', 'train_wall_minutes')


def parse_setting(text: str) -> tuple[str, list[str]]:
  """'name:--config.a=1 --config.b=2' -> ('name', ['--config.a=1', '--config.b=2'])."""
  name, sep, overrides = text.partition(':')
  name = name.strip()
  if not sep or not name or '/' in name:
    raise app.UsageError(f"--setting={text!r}: expected 'NAME:OVERRIDES' with a NAME free of '/'.")
  overrides = shlex.split(overrides)
  bad = [o for o in overrides if not o.startswith('--config.')]
  if bad:
    raise app.UsageError(f'--setting={text!r}: only --config.* overrides are allowed, got {bad}.')
  return name, overrides


def _latest_step(workdir: str) -> int | None:
  ckpt = os.path.join(workdir, 'checkpoints')
  steps = [int(d) for d in os.listdir(ckpt) if d.isdigit()] if os.path.isdir(ckpt) else []
  return max(steps) if steps else None


def _run(setting: str, seed: str, overrides: list[str]) -> dict:
  workdir = os.path.join(_ROOT.value, setting, f'seed{seed}')
  os.makedirs(workdir, exist_ok=True)
  overrides = [o.replace('{seed}', seed) for o in overrides]
  # eval_every_steps=0: experiments.evaluate scores the final checkpoint below,
  # so the loop's own end-of-training evaluation would be the same work twice
  # (and would count as training time). An override may still ask for it.
  train_cmd = [sys.executable, '-m', 'experiments.main', f'--config={_CONFIG.value}',
               f'--workdir={workdir}', f'--config.seed={seed}', '--config.eval_every_steps=0',
               *overrides]
  eval_path = os.path.join(workdir, 'eval.json')
  timing = os.path.join(workdir, 'sweep_timing.json')
  with open(os.path.join(workdir, 'sweep.log'), 'a') as log:
    start = time.time()
    subprocess.run(train_cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
    wall = (time.time() - start) / 60
    done = None
    if os.path.exists(eval_path):
      with open(eval_path) as f:
        done = json.load(f).get('step')
    if done is None or done != _latest_step(workdir):
      subprocess.run([sys.executable, '-m', 'experiments.evaluate', f'--workdir={workdir}'],
                     stdout=log, stderr=subprocess.STDOUT, check=True)
  with open(eval_path) as f:
    result = json.load(f)
  # A resumed run keeps the wall time of its first full run.
  if os.path.exists(timing):
    with open(timing) as f:
      wall = json.load(f).get('train_wall_minutes', wall)
  else:
    with open(timing, 'w') as f:
      json.dump({'train_wall_minutes': wall, 'command': shlex.join(train_cmd)}, f)
  result.update(setting=setting, seed=int(seed), train_wall_minutes=wall,
                command=shlex.join(train_cmd))
  print(f'{setting} seed {seed}: ' + ', '.join(f'{k}={result.get(k)}' for k in KEYS), flush=True)
  return result


def main(argv):
  common = [a for a in argv[1:] if a.startswith('--config.')]
  unknown = [a for a in argv[1:] if not a.startswith('--config.')]
  if unknown:
    raise app.UsageError(f'Unexpected arguments: {unknown}')
  settings = [parse_setting(s) for s in _SETTINGS.value] or [('default', [])]
  names = [n for n, _ in settings]
  if len(set(names)) != len(names) or 'selected' in names:
    raise app.UsageError(f"Setting names must be unique and not 'selected', got {names}.")
  among = _SELECT_AMONG.value or names
  if _SELECT_AMONG.value and not _SELECT_BY.value:
    raise app.UsageError('--select_among needs --select_by.')
  if set(among) - set(names):
    raise app.UsageError(f'--select_among names unknown settings {sorted(set(among) - set(names))}.')
  os.makedirs(_ROOT.value, exist_ok=True)
  jobs = [(name, seed, common + overrides) for name, overrides in settings for seed in _SEEDS.value]
  with concurrent.futures.ThreadPoolExecutor(max_workers=_PARALLEL.value) as pool:
    results = list(pool.map(lambda job: _run(*job), jobs))
  by_setting = {name: [r for r in results if r['setting'] == name] for name in names}
  if _SELECT_BY.value:
    # Restarts become one result per seed, chosen without labels (experiments/docs/research_log.md, "Seed robustness").
    by_setting['selected'] = reporting.select_per_seed(by_setting, _SELECT_BY.value, among)
  summary = {'config': _CONFIG.value, 'common_overrides': common,
             'settings': {name: overrides for name, overrides in settings},
             'aggregate': {name: reporting.aggregate(runs, KEYS) for name, runs in by_setting.items()},
             'runs': results}
  with open(os.path.join(_ROOT.value, 'results.json'), 'w') as f:
    json.dump(summary, f, indent=2)
  table = reporting.settings_table(by_setting, KEYS[:4] + ('generated_label_accuracy',
                                                            'latent_gmm_error'))
  with open(os.path.join(_ROOT.value, 'results.md'), 'w') as f:
    f.write(f'config: {_CONFIG.value} {shlex.join(common)}\n\n{table}\n\n')
    for name, overrides in settings:
      f.write(f'## {name}: {shlex.join(overrides)}\n\n'
              f'{reporting.markdown_table(by_setting[name], KEYS)}\n\n')
    if _SELECT_BY.value:
      labelled = [{**r, 'seed': f"{r['seed']} ({r['selected_from']})"} for r in by_setting['selected']]
      f.write(f'## selected: per seed, the run of {among} with the highest {_SELECT_BY.value}\n\n'
              f"{reporting.markdown_table(labelled, KEYS)}\n\n")
  print(table)


def _parse_flags(argv):
  """Parses sweep flags; leaves --config.* overrides in argv for main()."""
  return flags.FLAGS(argv, known_only=True)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
