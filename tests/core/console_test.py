"""What a person sees: a short console, one error line per mistake, one run per workdir."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from lgae.core import workdir as workdir_lib
from tests import fake_mnist

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return fake_mnist.prepare(str(tmp_path_factory.mktemp('fake_mnist')))


def _main_argv(workdir, data_dir, *extra):
  return [sys.executable, '-m', 'experiments.main', '--config=configs/mnist.py:smoke',
          f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}', *extra]


def _run(argv):
  return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)


def _lines(result):
  return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


# -----------------------------------------------------------------------------
# The console.
# -----------------------------------------------------------------------------


def test_a_plain_run_prints_a_few_lines_with_progress_and_where_it_lives(tmp_path, data_dir):
  workdir = tmp_path / 'run'
  result = _run(_main_argv(workdir, data_dir, '--config.num_train_steps=6',
                           '--config.log_every_steps=3', '--config.eval_every_steps=-1'))
  assert result.returncode == 0, result.stderr[-3000:]
  lines = _lines(result)
  text = '\n'.join(lines)
  assert len(lines) < 15, text
  assert f'workdir {workdir}' in text
  assert 'steps/s' in text and 'ETA' in text
  assert f'checkpoint at step 6: {workdir}/checkpoints/6' in text
  assert f'done at step 6: checkpoints in {workdir}/checkpoints' in text
  for noise in ('orbax', 'Closing', 'oneDNN', 'dataset_info', 'batch_size:'):
    assert noise not in text, noise


def test_verbosity_brings_the_libraries_lines_back(tmp_path, data_dir):
  # The control for the test above: the few lines are lgae's filter, not a quiet run.
  result = _run(_main_argv(tmp_path / 'run', data_dir, '--config.num_train_steps=2',
                           '--config.eval_every_steps=-1', '--verbosity=0'))
  assert result.returncode == 0, result.stderr[-3000:]
  assert len(_lines(result)) > 30
  assert 'orbax' in result.stderr.lower()


def test_a_missing_config_file_is_one_error_line(tmp_path):
  result = _run([sys.executable, '-m', 'experiments.main', '--config=configs/typo.py',
                 f'--workdir={tmp_path / "run"}'])
  assert result.returncode == 1
  assert 'Traceback' not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and 'configs/typo.py' in errors[0], result.stderr[-2000:]
  assert not (tmp_path / 'run').exists()


def test_a_config_file_that_does_not_run_is_a_usage_error_naming_its_line(tmp_path):
  bad = tmp_path / 'bad.py'
  bad.write_text('x = (\n')
  result = _run([sys.executable, '-m', 'experiments.main', f'--config={bad}',
                 f'--workdir={tmp_path / "run"}'])
  assert result.returncode == 1
  assert 'Traceback' not in result.stderr
  assert f'({bad}, line 1)' in result.stderr and 'SyntaxError' in result.stderr


def test_a_workdir_that_is_a_file_is_one_error_line_and_stays_as_it_was(tmp_path, data_dir):
  path = tmp_path / 'not_a_dir'
  path.write_text('mine')
  result = _run(_main_argv(path, data_dir))
  assert result.returncode == 1
  assert 'Traceback' not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and 'existing file, not a directory' in errors[0], result.stderr[-2000:]
  assert path.read_text() == 'mine'


# -----------------------------------------------------------------------------
# One run per workdir.
# -----------------------------------------------------------------------------


def test_check_usable(tmp_path):
  workdir_lib.check_usable(str(tmp_path / 'new' / 'deeper'))   # Created later: fine.
  (tmp_path / 'file').write_text('')
  with pytest.raises(workdir_lib.WorkdirError, match='existing file'):
    workdir_lib.check_usable(str(tmp_path / 'file'))
  with pytest.raises(workdir_lib.WorkdirError, match='is a file, so the directory cannot'):
    workdir_lib.check_usable(str(tmp_path / 'file' / 'sub'))


def test_a_held_workdir_is_refused_naming_the_holder(tmp_path):
  with workdir_lib.hold(str(tmp_path)):
    holder = json.loads((tmp_path / workdir_lib.LOCK_FILE).read_text())
    assert holder['pid'] == os.getpid()
    with pytest.raises(workdir_lib.WorkdirInUseError, match=f'pid {os.getpid()} on '):
      with workdir_lib.hold(str(tmp_path)):
        pass
  with workdir_lib.hold(str(tmp_path)):   # Released on exit.
    pass


def test_a_killed_holder_leaves_no_hold(tmp_path):
  code = ('import sys, time\nfrom lgae.core import workdir\n'
          'with workdir.hold(sys.argv[1]):\n  print("held", flush=True)\n  time.sleep(60)\n')
  child = subprocess.Popen([sys.executable, '-c', code, str(tmp_path)], cwd=REPO,
                           stdout=subprocess.PIPE, text=True)
  try:
    assert child.stdout.readline().strip() == 'held'
    with pytest.raises(workdir_lib.WorkdirInUseError, match=f'pid {child.pid} '):
      with workdir_lib.hold(str(tmp_path)):
        pass
    child.kill()   # kill -9: no clean-up code runs; the kernel drops the lock.
    child.wait(timeout=30)
  finally:
    child.kill()
  with workdir_lib.hold(str(tmp_path)):   # The stale hold is taken over at once.
    assert json.loads((tmp_path / workdir_lib.LOCK_FILE).read_text())['pid'] == os.getpid()


def test_a_second_run_on_a_live_runs_workdir_is_refused_at_once_and_the_first_finishes(
    tmp_path, data_dir):
  workdir = tmp_path / 'run'
  first = subprocess.Popen(
      _main_argv(workdir, data_dir, '--config.num_train_steps=100000',
                 '--config.checkpoint_every_steps=100000', '--config.log_every_steps=1',
                 '--config.eval_every_steps=-1'),
      cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
  try:
    deadline = time.monotonic() + 240
    while not (workdir / 'metrics.jsonl').exists():   # The first run is training.
      assert first.poll() is None and time.monotonic() < deadline, 'first run did not start'
      time.sleep(0.2)
    start = time.monotonic()
    second = _run(_main_argv(workdir, data_dir, '--config.num_train_steps=100000'))
    assert time.monotonic() - start < 60   # Refused, not left waiting on Orbax.
    assert second.returncode == 1
    errors = [line for line in second.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and f'pid {first.pid}' in errors[0], second.stderr[-2000:]
    assert 'Traceback' not in second.stderr
    assert first.poll() is None   # Unharmed: still training.
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == 0
  finally:
    first.kill()
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in records] == list(range(1, len(records) + 1))
