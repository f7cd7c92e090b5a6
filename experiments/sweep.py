r"""Trains and evaluates a grid of settings x seeds, one run after another, then one table.

  python -m experiments.sweep --config=configs/mnist.py --seeds=0,1,2 --root=/tmp/sweep \
      --setting='literal:' \
      --setting='swap:--config.loss.lambda_disc=1 --config.loss.lambda_cont=0.1' \
      [--config.num_epochs=5 ...]

Each (setting, seed) runs `experiments.main` (with `--config.eval_every_steps=0`:
no evaluation inside the training loop, unless an override asks for one) then
`experiments.evaluate` in its own process and workdir `<root>/<setting>/seed<N>`
(their output goes to `<workdir>/sweep.log`). Re-running the same command
resumes: finished runs (an eval.json for their final checkpoint) are skipped,
unfinished ones continue from their last checkpoint. `--config.*` flags after
the sweep's own apply to every setting; a setting's overrides come after them.
`{seed}` in an override is replaced by the seed (e.g. a per-seed
`--config.two_stage.autoencoder_workdir=/runs/ae/seed{seed}`). Without
--setting the grid is one setting named 'default'. Writes `<root>/results.json`
(every run's eval.json, command and wall time) and `<root>/results.md`
(mean ± std per setting, then per-run rows). Runs go one at a time unless
--parallel says otherwise: each run already uses every core through XLA.

Before the first run, the seeds, the settings and every setting's config (for
each seed, as `experiments.main` would parse it; the dataset is not read) are
checked: any problem is an `error:` line naming the setting, exit code 1, and
nothing is run or created. A run that fails does not stop the others: the
tables hold the runs that finished and list each failure (exit code, the last
`error:` line of its sweep.log, else its last line), and the sweep exits with code 1. SIGTERM or SIGINT
(Ctrl-C) is passed on to the running runs (`experiments.main` checkpoints and
exits), no new run starts, the tables of the finished runs are written, and the
sweep exits with code 1; re-running the same command resumes. (The runs have
their own process group: a Ctrl-C in the terminal reaches them once, through
the sweep. A second signal is passed on too: a hard stop. SIGHUP, the terminal
closing, is passed on as SIGTERM.)

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
import contextlib
import io
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

from absl import app, flags
from ml_collections import config_flags

from experiments import cli
from lgae import errors
from lgae.core import config_validation
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


class RunFailed(Exception):
  """A run's process exited with an error; `record` says which, how, and where its log is."""

  def __init__(self, record: dict):
    super().__init__(record)
    self.record = record


class Stopped(Exception):
  """The sweep was stopped (SIGTERM/SIGINT) before this run finished."""


class _Children:
  """The runs' processes; SIGTERM/SIGINT/SIGHUP to the sweep are passed on to them.

  The handler runs in the main thread, the runs in worker threads: the set of
  live processes is guarded by a lock (re-entrant, as a second signal's
  handler may interrupt the first's), under which a run also starts, so that
  after a stop no new process starts and none that started is missed.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

  def __init__(self):
    self.stopped_by = ''   # the first signal's name, once one arrived.
    self._lock = threading.RLock()
    self._live = set()
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
          continue   # under nohup.
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}
    return False

  def _handle(self, signum, frame):
    del frame
    with self._lock:
      self.stopped_by = self.stopped_by or signal.Signals(signum).name
      live = list(self._live)
    # experiments.main checkpoints and exits on SIGTERM/SIGINT; it has no SIGHUP handler.
    for child in live:
      child.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

  def run(self, cmd: list[str], log) -> int:
    """Runs `cmd` (output to `log`) to its end; its exit code. Stopped if stopped before."""
    with self._lock:
      if self.stopped_by:
        raise Stopped()
      # Its own session: a Ctrl-C in the terminal reaches it only through _handle.
      child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
      self._live.add(child)
    try:
      return child.wait()
    finally:
      with self._lock:
        self._live.discard(child)


_children = _Children()


def parse_setting(text: str) -> tuple[str, list[str]]:
  """'name:--config.a=1 --config.b=2' -> ('name', ['--config.a=1', '--config.b=2'])."""
  name, sep, overrides = text.partition(':')
  name = name.strip()
  if not sep or not name or '/' in name:
    raise app.UsageError(f"--setting={text!r}: expected 'NAME:OVERRIDES' with a NAME free of '/'.")
  try:
    overrides = shlex.split(overrides)
  except ValueError as e:   # an unbalanced quote.
    raise errors.UserError(f'--setting={text!r}: {e} (quote as in a shell).') from None
  bad = [o for o in overrides if not o.startswith('--config.')]
  if bad:
    raise app.UsageError(f'--setting={text!r}: only --config.* overrides are allowed, got {bad}.')
  return name, overrides


def _config_args(seed: str, overrides: list[str]) -> list[str]:
  """experiments.main's config flags for a run (its overrides with `{seed}` replaced)."""
  # eval_every_steps=0: experiments.evaluate scores the final checkpoint, so
  # the loop's own end-of-training evaluation would be the same work twice
  # (and would count as training time). An override may still ask for it.
  return [f'--config={_CONFIG.value}', f'--config.seed={seed}', '--config.eval_every_steps=0',
          *(o.replace('{seed}', seed) for o in overrides)]


def _load(args: list[str]):
  """(the config experiments.main would get from `args`, None) or (None, what is wrong)."""
  fv = flags.FlagValues()
  argv = ['experiments.main', *args]
  holder = config_flags.DEFINE_config_file('config', None, 'Config file.', flag_values=fv,
                                           lock_config=True, sys_argv=argv)
  stderr = io.StringIO()
  try:
    with contextlib.redirect_stderr(stderr):
      config_validation.parse_flags(argv, flag_values=fv)
  except SystemExit:   # parse_flags' usage error: 'FATAL Flags parsing error: <message>'.
    first = (stderr.getvalue().strip().splitlines() or ['the flags do not parse'])[0]
    return None, first.removeprefix('FATAL Flags parsing error:').strip()
  try:
    return config_validation.loaded_config(holder, fv), None
  except config_validation.ConfigError as e:
    return None, str(e)


def config_problem(args: list[str]) -> str | None:
  """What is wrong with the config experiments.main would get from `args`, or None."""
  config, problem = _load(args)
  if config is None:
    return problem
  try:
    config_validation.validate(config, check_dataset=False)
  except config_validation.ConfigError as e:
    return '; '.join(line.strip() for line in str(e).removeprefix('Invalid config:').splitlines()
                     if line.strip())
  return None


def _seeds(texts: list[str]) -> tuple[list[str], list[str]]:
  """The seeds (as decimal strings) and the problems with --seeds."""
  seeds, problems = [], []
  for text in texts:
    try:
      seed = int(text)
    except ValueError:
      problems.append(f'--seeds: {text!r} is not an integer.')
      continue
    if not 0 <= seed < 2**63:
      problems.append(f'--seeds: {seed} is not in [0, 2**63).')
    elif str(seed) in seeds:
      problems.append(f'--seeds: {seed} is given twice.')
    else:
      seeds.append(str(seed))
  if not texts:
    problems.append('--seeds is empty: give at least one seed.')
  return seeds, problems


def _check(settings, common: list[str], seeds: list[str]) -> list[str]:
  """Problems with each setting's config, for each seed; settings with the same one together."""
  by_problem = {}
  for name, overrides in settings:
    for i, seed in enumerate(seeds):
      problem = config_problem(_config_args(seed, common + overrides))
      if problem:
        by_problem.setdefault(f"{f'seed {seed}: ' if i else ''}{problem}", []).append(name)
        break
  return [f"setting{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}: {problem}"
          for problem, names in by_problem.items()]


def _fail(problems: list[str]):
  """One `error:` line; with several problems, one more line for each."""
  if len(problems) == 1:
    cli.fail(f'{problems[0]} Nothing was run.')
  raise errors.UserError(f'{len(problems)} problems, nothing was run:\n' +
                         '\n'.join(f'  {p}' for p in problems))


def _latest_step(workdir: str) -> int | None:
  ckpt = os.path.join(workdir, 'checkpoints')
  steps = [int(d) for d in os.listdir(ckpt) if d.isdigit()] if os.path.isdir(ckpt) else []
  return max(steps) if steps else None


def _last_line(path: str, offset: int) -> str:
  """The line that says why a run failed: its last `error:` line, else the last non-empty one."""
  with open(path, 'rb') as f:
    f.seek(offset)
    lines = [line.strip() for line in f.read().decode(errors='replace').splitlines()]
  lines = [line for line in lines if line]
  errors_ = [line for line in lines if line.startswith('error:')]
  return (errors_ or lines or [''])[-1]


def _run(setting: str, seed: str, overrides: list[str]) -> dict:
  """Trains and evaluates one run; RunFailed if a process fails, Stopped if the sweep stops."""
  workdir = os.path.join(_ROOT.value, setting, f'seed{seed}')
  os.makedirs(workdir, exist_ok=True)
  config_args = _config_args(seed, overrides)
  train_cmd = [sys.executable, '-m', 'experiments.main', config_args[0], f'--workdir={workdir}',
               *config_args[1:]]
  eval_path = os.path.join(workdir, 'eval.json')
  timing = os.path.join(workdir, 'sweep_timing.json')
  log_path = os.path.join(workdir, 'sweep.log')
  with open(log_path, 'a') as log:
    offset = log.tell()

    def run(cmd):
      code = _children.run(cmd, log)   # Stopped if the sweep was stopped before it started.
      if code != 0 and _children.stopped_by:   # killed or interrupted by the stop.
        raise Stopped()
      if code != 0:
        record = {'setting': setting, 'seed': int(seed), 'exit_code': code,
                  'last_line': _last_line(log_path, offset), 'log': log_path,
                  'command': shlex.join(cmd)}
        print(f'{setting} seed {seed}: failed (exit code {code}): {record["last_line"]} '
              f'(log: {log_path})', flush=True)
        raise RunFailed(record)

    start = time.time()
    run(train_cmd)
    wall = (time.time() - start) / 60
    done = None
    if os.path.exists(eval_path):
      with open(eval_path) as f:
        done = json.load(f).get('step')
    if done is None or done != _latest_step(workdir):
      run([sys.executable, '-m', 'experiments.evaluate', f'--workdir={workdir}'])
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


def _failure_line(f: dict) -> str:
  how = 'the sweep could not run it' if f['exit_code'] is None else f"exit code {f['exit_code']}"
  log = f" (log: {f['log']})" if f['log'] else ''
  return f"{f['setting']} seed {f['seed']}: {how}: {f['last_line']}{log}"


def main(argv):
  common = [a for a in argv[1:] if a.startswith('--config.')]
  unknown = [a for a in argv[1:] if not a.startswith('--config.')]
  if unknown:
    raise app.UsageError(f'Unexpected arguments: {unknown}')
  problems = []
  settings = []
  for text in _SETTINGS.value:
    try:
      settings.append(parse_setting(text))
    except errors.UserError as e:
      problems.append(str(e))
  settings = settings if _SETTINGS.value else [('default', [])]
  names = [n for n, _ in settings]
  if len(set(names)) != len(names) or 'selected' in names:
    raise app.UsageError(f"Setting names must be unique and not 'selected', got {names}.")
  among = _SELECT_AMONG.value or names
  if _SELECT_AMONG.value and not _SELECT_BY.value:
    raise app.UsageError('--select_among needs --select_by.')
  if set(among) - set(names):
    raise app.UsageError(f'--select_among names unknown settings {sorted(set(among) - set(names))}.')
  if _PARALLEL.value < 1:
    problems.append(f'--parallel={_PARALLEL.value}: must be >= 1.')
  seeds, seed_problems = _seeds(_SEEDS.value)
  problems += seed_problems
  # Every setting's config, as each run's experiments.main will parse it: a typo
  # is reported now, not after the runs before it (the dataset is the runs' to check).
  _, problem = _load([f'--config={_CONFIG.value}'])
  problems += [problem] if problem else _check(settings, common, seeds)
  if problems:
    _fail(problems)

  if os.path.exists(_ROOT.value) and not os.path.isdir(_ROOT.value):
    cli.fail(f'--root={_ROOT.value} is a file; give a directory (created if missing).')
  os.makedirs(_ROOT.value, exist_ok=True)
  jobs = [(name, seed, common + overrides) for name, overrides in settings for seed in seeds]
  results, failures, unfinished = [], [], []
  with _children, concurrent.futures.ThreadPoolExecutor(max_workers=_PARALLEL.value) as pool:
    futures = [pool.submit(_run, *job) for job in jobs]
    for job, future in zip(jobs, futures):
      try:
        results.append(future.result())
      except RunFailed as e:
        failures.append(e.record)
      except Stopped:
        unfinished.append(f'{job[0]} seed {job[1]}')
      except Exception as e:  # pylint: disable=broad-except
        message = cli.expected_failure_message(e)   # e.g. a workdir it cannot write.
        if message is None:
          raise
        failures.append({'setting': job[0], 'seed': int(job[1]), 'exit_code': None,
                         'last_line': ' '.join(message.split()), 'log': None})
  stopped_by = _children.stopped_by if unfinished else ''
  _children.stopped_by = ''   # (for the next main() in this process: tests.)
  root = _ROOT.value
  by_setting = {name: [r for r in results if r['setting'] == name] for name in names}
  if _SELECT_BY.value:
    # Restarts become one result per seed, chosen without labels (experiments/docs/research_log.md, "Seed robustness").
    by_setting['selected'] = reporting.select_per_seed(by_setting, _SELECT_BY.value, among)
  summary = {'config': _CONFIG.value, 'common_overrides': common,
             'settings': {name: overrides for name, overrides in settings},
             'aggregate': {name: reporting.aggregate(runs, KEYS) for name, runs in by_setting.items()},
             'runs': results, 'failures': failures,
             'stopped': {'signal': stopped_by, 'unfinished': unfinished} if stopped_by else None}
  with open(os.path.join(root, 'results.json'), 'w') as f:
    json.dump(_strict(summary), f, indent=2, allow_nan=False)
  table = reporting.settings_table(by_setting, KEYS[:4] + ('generated_label_accuracy',
                                                            'latent_gmm_error'))
  with open(os.path.join(root, 'results.md'), 'w') as f:
    f.write(f'config: {_CONFIG.value} {shlex.join(common)}\n\n{table}\n\n')
    if failures:
      f.write('## failed runs (each not in the tables)\n\n' +
              ''.join(f'- {_failure_line(x)}\n' for x in failures) + '\n')
    if stopped_by:
      f.write(f'## stopped by {stopped_by} before these runs finished\n\n'
              f'{", ".join(unfinished)}: re-running the same command resumes them.\n\n')
    for name, overrides in settings:
      rows = (reporting.markdown_table(by_setting[name], KEYS) if by_setting[name] else
              'No run of this setting finished.')
      f.write(f'## {name}: {shlex.join(overrides)}\n\n{rows}\n\n')
    if _SELECT_BY.value:
      labelled = [{**r, 'seed': f"{r['seed']} ({r['selected_from']})"} for r in by_setting['selected']]
      f.write(f'## selected: per seed, the run of {among} with the highest {_SELECT_BY.value}\n\n'
              f"{reporting.markdown_table(labelled, KEYS)}\n\n")
  print(table)
  md = os.path.join(root, 'results.md')
  failed = ', '.join(f"{x['setting']} seed {x['seed']}" for x in failures)
  if stopped_by:
    headline = (f'the sweep was stopped by {stopped_by}: {len(results)} of {len(jobs)} runs '
                f'finished{f", {len(failures)} failed ({failed})" if failures else ""} (table: '
                f'{md}); re-running the same command resumes the others from their last '
                'checkpoint.')
  elif failures:
    headline = (f'{len(failures)} of {len(jobs)} runs failed ({failed}); the table of the '
                f'{len(results)} that finished is in {md}')
  else:
    return
  if not failures:
    cli.fail(headline)
  # The error line, then a line for each failure.
  raise errors.UserError('\n'.join([headline, *(f'  {_failure_line(x)}' for x in failures)]))


def _strict(value):
  """`value` with NaN and infinities as None: strict JSON (a setting with no finished run has NaN means)."""
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: _strict(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_strict(v) for v in value]
  return value


def _parse_flags(argv):
  """Parses sweep flags; leaves --config.* overrides in argv for main().

  A bad or missing flag is one `FATAL Flags parsing error:` line, as in the other CLIs.
  """
  try:
    return flags.FLAGS(argv, known_only=True)
  except flags.Error as e:
    sys.stderr.write(f'FATAL Flags parsing error: {" ".join(str(e).split())}\n'
                     'Pass --helpshort or --helpfull to see help on flags.\n')
    sys.exit(1)


if __name__ == '__main__':
  cli.run(main, flags_parser=_parse_flags)
