"""experiments.sweep: bad input stops it before any run; a failed run or a stop keeps the table."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from tests import fake_mnist

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = f'--config={REPO / "configs" / "mnist.py"}:smoke'


def _sweep_args(*args):
  return [sys.executable, '-m', 'experiments.sweep', *args]


def _env():
  return dict(os.environ, JAX_PLATFORMS='cpu')


def _sweep(*args):
  return subprocess.run(_sweep_args(*args), cwd=REPO, env=_env(), capture_output=True, text=True,
                        timeout=600)


def _error_lines(stderr):
  return [line for line in stderr.splitlines() if line.startswith('error:')]


def _runs_of(workdir):
  """The pids of the live `experiments.main` processes training in `workdir`."""
  pids = []
  for entry in os.listdir('/proc'):
    if not entry.isdigit():
      continue
    try:
      with open(f'/proc/{entry}/cmdline', 'rb') as f:
        args = f.read().decode(errors='replace').split('\0')
    except OSError:
      continue
    if 'experiments.main' in args and f'--workdir={workdir}' in args:
      pids.append(int(entry))
  return pids


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return fake_mnist.prepare(str(tmp_path_factory.mktemp('fake_mnist')))


@pytest.mark.parametrize('args, expected', [
    (['--seeds=abc,0'], ["--seeds: 'abc' is not an integer"]),
    (["--setting=a:--config.seed='1"], ['--setting="a:--config.seed=\'1"', 'No closing quotation']),
    # Several problems: still one `error:` line, then one line for each.
    (['--seeds=0,9223372036854775808', '--setting=ok:',
      '--setting=typo:--config.loss.lamda_disc=1', '--setting=value:--config.num_train_steps=x'],
     ['not in [0, 2**63)',
      "setting 'typo': --config.loss.lamda_disc=1: the config has no field 'lamda_disc'",
      "setting 'value': flag --config.num_train_steps=x"]),
    (['--config=configs/no_such_config.py'], ['cannot load --config=configs/no_such_config.py']),
    (['--parallel=abc'], ['flag --parallel=abc']),   # absl's own flag errors: one line too.
    (['--select_by=nosuch'], ['flag --select_by=nosuch']),
    (['--setting=nocolon'], ["expected 'NAME:OVERRIDES'"]),   # a usage error, without --help's text.
])
def test_bad_input_is_one_error_line_before_any_run(args, expected, tmp_path):
  root = tmp_path / 'root'
  result = _sweep(CONFIG, f'--root={root}', *args)
  assert result.returncode == 1, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines()
            if line.startswith(('error:', 'FATAL Flags parsing error:'))]
  assert len(errors) == 1, result.stderr[-3000:]
  for text in expected:
    assert text in result.stderr, result.stderr[-3000:]
  # The error, its indented lines (one per problem) and absl's pointer to --help; not --help itself.
  assert len(result.stderr.strip().splitlines()) <= len(expected) + 2, result.stderr[-3000:]
  assert not root.exists()   # nothing created, so nothing ran.


@pytest.mark.slow
def test_a_failed_run_leaves_the_table_of_the_others(data_dir, tmp_path):
  empty = tmp_path / 'empty_tfds'
  empty.mkdir()
  root = tmp_path / 'root'
  # 'broken' passes the checks before the runs (they do not read the dataset)
  # and fails in its experiments.main: its dataset is not prepared.
  result = _sweep(CONFIG, f'--root={root}', '--seeds=0', '--parallel=2',
                  f'--config.dataset.data_dir={data_dir}', '--config.num_train_steps=3',
                  '--setting=ok:',
                  f'--setting=broken:--config.dataset.data_dir={empty} '
                  '--config.dataset.download=False')
  assert result.returncode == 1, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  errors = _error_lines(result.stderr)
  assert len(errors) == 1 and '1 of 2 runs failed (broken seed 0)' in errors[0], result.stderr
  assert str(root / 'results.md') in errors[0]
  log = str(root / 'broken' / 'seed0' / 'sweep.log')
  # stderr lists the failure: exit code, the log's error line, the log.
  assert 'broken seed 0: exit code 1: error: ' in result.stderr and log in result.stderr

  def not_strict_json(token):
    raise AssertionError(f'results.json holds {token}: not strict JSON')

  results = json.loads((root / 'results.json').read_text(), parse_constant=not_strict_json)
  assert [(r['setting'], r['seed']) for r in results['runs']] == [('ok', 0)]
  assert results['runs'][0]['test_error_hungarian'] is not None
  [failure] = results['failures']
  assert (failure['setting'], failure['seed'], failure['exit_code'], failure['log']) == (
      'broken', 0, 1, log)
  assert failure['last_line'].startswith('error:') and 'not prepared' in failure['last_line']
  assert results['aggregate']['broken']['test_error_hungarian'] == {
      'mean': None, 'std': None, 'min': None, 'max': None, 'n': 0}   # null, not NaN.
  md = (root / 'results.md').read_text()
  assert '| ok | 1 |' in md and '| broken | 0 |' in md
  assert 'broken seed 0: exit code 1' in md and log in md


@pytest.mark.slow
@pytest.mark.parametrize('how', ['SIGTERM to the sweep', 'Ctrl-C (SIGINT to its process group)'])
def test_a_stopped_sweep_stops_its_run_with_a_checkpoint(how, data_dir, tmp_path):
  root = tmp_path / 'root'
  workdir = root / 'default' / 'seed0'
  # Its own session, so that a signal to its process group reaches no test process.
  sweep = subprocess.Popen(
      _sweep_args(CONFIG, f'--root={root}', '--seeds=0', f'--config.dataset.data_dir={data_dir}',
                  '--config.num_train_steps=1000000', '--config.checkpoint_every_steps=1000000'),
      cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      start_new_session=True)
  try:
    # experiments.main catches signals from before it makes checkpoints/.
    deadline = time.time() + 300
    while not (workdir / 'checkpoints').is_dir():
      assert sweep.poll() is None and time.time() < deadline, sweep.communicate()[1][-3000:]
      time.sleep(0.2)
    assert _runs_of(workdir)
    if how.startswith('SIGTERM'):
      sweep.send_signal(signal.SIGTERM)
    else:
      os.killpg(sweep.pid, signal.SIGINT)
    _, stderr = sweep.communicate(timeout=120)
  finally:
    if sweep.poll() is None:
      sweep.kill()
      sweep.communicate()
    orphans = _runs_of(workdir)
    for pid in orphans:
      os.kill(pid, signal.SIGKILL)
  assert not orphans, 'the run outlived the sweep'
  name = 'SIGTERM' if how.startswith('SIGTERM') else 'SIGINT'
  assert sweep.returncode == 1, stderr[-3000:]
  assert 'Traceback' not in stderr, stderr[-3000:]
  errors = _error_lines(stderr)
  assert len(errors) == 1 and f'stopped by {name}' in errors[0], stderr[-3000:]
  assert 're-running the same command resumes' in errors[0]
  # The run got the signal once: it checkpointed and stopped (a second signal is a hard stop).
  checkpoints = workdir / 'checkpoints'
  assert checkpoints.is_dir() and any(d.isdigit() for d in os.listdir(checkpoints))
  log = (workdir / 'sweep.log').read_text()
  assert f'Received {name}' in log and 'Traceback' not in log, log[-3000:]
  assert not (workdir / 'eval.json').exists()   # no evaluation starts after a stop.
  results = json.loads((root / 'results.json').read_text())
  assert results['runs'] == [] and results['stopped'] == {
      'signal': name, 'unfinished': ['default seed 0']}
