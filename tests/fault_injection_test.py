"""Fault injection: kill -9, SIGTERM/SIGINT, a NaN loss, a damaged checkpoint.

Every run is the tiny smoke config on a fake 64-image MNIST on disk. The kill
and signal tests drive the real CLI (`experiments.main`) in child processes
and check the workdir after each fault:

* kill -9 at random (seeded) moments, some of them inside a checkpoint write:
  the latest listed step is always complete and restorable, half-written
  steps are never listed and are removed by the next run, and re-running the
  same command finishes the run, redoing the steps after the last checkpoint
  with exactly the same losses.
* SIGTERM, then SIGINT: each ends the run with exit code 0, a message and a
  checkpoint at the step it stopped at; re-running resumes from it, on 1
  device although it was written on 4.
* a NaN loss: a `NonFiniteLossError` naming the step and the loss, and the
  last checkpoint before it stays the latest, finite one.
* a truncated checkpoint file: a `CheckpointError` (CLI: exit 1, one `error:`
  line) saying which step is damaged and how to fall back to the previous
  one, and nothing on disk changes. We chose an error over falling back
  automatically: Orbax cannot save over the damaged step, so falling back
  means deleting it, i.e. destroying what may be the only copy of hours of
  training on a guess that it is damaged rather than, e.g., on a disk that is
  temporarily unreadable.

Child processes are forked from one "zygote" Python process that has already
imported `experiments.main` (TensorFlow, JAX, Orbax: ~8 s per process on the
shared CI machine); each child then runs `main.run()` (what `python -m
experiments.main` runs) with its own argv,
environment and log file, exactly as `python -m experiments.main` would.
"""

import collections
import functools
import hashlib
import json
import os
import pathlib
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mnist
from lgae import train
from lgae.core import checkpointing, parallel
from lgae.evaluation import run as evaluation
from lgae.core import state as state_lib
from lgae.methods.latentgan_ae import step as train_step_lib
from lgae.core import workdir as workdir_lib
from tests import fake_mnist

REPO = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 240  # seconds; generous, the machine is shared.
TMP_SUFFIX = '.orbax-checkpoint-tmp'


# -----------------------------------------------------------------------------
# Child processes.
# -----------------------------------------------------------------------------

_ZYGOTE = r'''
import json, os, sys, traceback
from absl import app
from experiments import main  # The expensive imports, shared with every child by fork.
import jax

for line in iter(sys.stdin.readline, ''):
  request = json.loads(line)
  pid = os.fork()
  if pid == 0:
    code = 1
    try:
      log = os.open(request['log'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
      os.dup2(log, 1)
      os.dup2(log, 2)
      os.close(log)
      os.environ.update(request['env'])
      if request['log_compiles']:  # JAX read JAX_LOG_COMPILES when the zygote imported it.
        jax.config.update('jax_log_compiles', True)
      sys.argv = ['experiments/main.py'] + request['argv']
      main.run()
      code = 0
    except SystemExit as e:
      if isinstance(e.code, str):
        print(e.code, file=sys.stderr)
      code = e.code if isinstance(e.code, int) else int(e.code is not None)
    except BaseException:  # An uncaught error, as the interpreter would report it.
      traceback.print_exc()
    finally:
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(code)
  print(pid, flush=True)
  _, status = os.waitpid(pid, 0)
  print(os.waitstatus_to_exitcode(status), flush=True)
'''


def _read_int(line):
  if not line.lstrip('-').isdigit():
    raise RuntimeError(f'The zygote process died:\n{line}')
  return int(line)


class Child:
  """One `experiments.main` run; `returncode` is negative if killed by a signal."""

  def __init__(self, pid, log, lines):
    self.pid, self.log, self._lines = pid, log, lines
    self.returncode = None

  def send(self, sig):
    os.kill(self.pid, sig)

  def poll(self):
    if self.returncode is None:
      try:
        self.returncode = _read_int(self._lines.get_nowait())
      except queue.Empty:
        pass
    return self.returncode

  def wait(self, timeout=TIMEOUT):
    if self.returncode is None:
      try:
        self.returncode = _read_int(self._lines.get(timeout=timeout))
      except queue.Empty:
        self.send(signal.SIGKILL)
        raise AssertionError(f'run did not end in {timeout} s:\n{self.output()[-3000:]}')
    return self.returncode

  def output(self):
    return pathlib.Path(self.log).read_text()


class Zygote:
  """Forks `experiments.main` runs from a process that has done the imports."""

  def __init__(self, env):
    self._proc = subprocess.Popen([sys.executable, '-c', _ZYGOTE], cwd=REPO, env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
    self._lines = queue.Queue()
    self._stderr = collections.deque(maxlen=50)  # Its own (import) messages, for errors.
    threading.Thread(target=self._read, daemon=True).start()
    threading.Thread(target=self._stderr.extend, args=(self._proc.stderr,), daemon=True).start()
    self._child = None

  def _read(self):
    for line in self._proc.stdout:
      self._lines.put(line.strip())
    self._lines.put(''.join(self._stderr))  # It exited: why.

  def start(self, argv, log, *, log_compiles=False, **env) -> Child:
    """Starts `python -m experiments.main <argv>` with `env` added, its output to `log`."""
    assert self._child is None or self._child.poll() is not None, 'one run at a time'
    request = {'argv': [str(a) for a in argv], 'log': str(log), 'env': env,
               'log_compiles': log_compiles}
    self._proc.stdin.write(json.dumps(request) + '\n')
    self._proc.stdin.flush()
    self._child = Child(_read_int(self._lines.get(timeout=TIMEOUT)), log, self._lines)
    return self._child

  def kill_running(self):
    if self._child is not None and self._child.poll() is None:
      self._child.send(signal.SIGKILL)
      self._child.wait()

  def close(self):
    self.kill_running()
    self._proc.stdin.close()
    self._proc.wait(timeout=60)


_ZYGOTE_KEY = pytest.StashKey[Zygote]()


def shared_zygote(pytestconfig) -> Zygote:
  """This pytest process's zygote: started on first use, stopped at the end of the session.

  One for every test module, as booting one costs ~8 s of CPU. The children
  inherit this process's environment: 4 forced CPU devices and the persistent
  compilation cache of conftest.py.
  """
  if _ZYGOTE_KEY not in pytestconfig.stash:
    pytestconfig.stash[_ZYGOTE_KEY] = Zygote(dict(os.environ))
    pytestconfig.add_cleanup(pytestconfig.stash[_ZYGOTE_KEY].close)
  return pytestconfig.stash[_ZYGOTE_KEY]


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return fake_mnist.prepare(str(tmp_path_factory.mktemp('fake_mnist')))


def boot_early(request, fixture_name):
  """Starts the zygote now if a selected test of this module will use it.

  For a module-scoped autouse fixture: the zygote then imports while the
  in-process tests, which come first in the module, run.
  """
  if any(item.module is request.module and fixture_name in item.fixturenames
         for item in request.session.items):
    shared_zygote(request.config)


@pytest.fixture(scope='module', autouse=True)
def _boot_zygote(request):
  boot_early(request, 'start_cli')


@pytest.fixture
def start_cli(pytestconfig, data_dir):
  """start_cli(argv, log, **env) -> Child: an `experiments.main` run on the fake MNIST."""
  zygote = shared_zygote(pytestconfig)
  yield lambda argv, log, **env: zygote.start(argv, log, **{'TFDS_DATA_DIR': data_dir, **env})
  zygote.kill_running()  # If the test failed with a run still going.


@pytest.fixture
def tfds_env(data_dir, monkeypatch):
  # In-process runs read the data dir from the environment, as the children
  # do, so their configs (and checkpoints) are interchangeable.
  monkeypatch.setenv('TFDS_DATA_DIR', data_dir)
  return data_dir


def _argv(workdir, **overrides):
  overrides = {'eval_every_steps': -1, **overrides}
  return (['--config=configs/mnist.py:smoke', f'--workdir={workdir}'] +
          [f'--config.{k}={v}' for k, v in overrides.items()])


def _config(**overrides):
  config = mnist.get_config('smoke')
  with config.unlocked():
    config.update({'eval_every_steps': -1, **overrides})
  return config


# -----------------------------------------------------------------------------
# Workdir inspection.
# -----------------------------------------------------------------------------


def _ckpt_dir(workdir):
  return pathlib.Path(checkpointing.checkpoint_dir(str(workdir)))


def _listing(workdir):
  """(committed steps, names of half-written step dirs) in the checkpoint dir."""
  try:
    names = os.listdir(_ckpt_dir(workdir))
  except FileNotFoundError:
    return [], []
  return sorted(int(n) for n in names if n.isdigit()), sorted(n for n in names if TMP_SUFFIX in n)


def _records(workdir):
  path = pathlib.Path(workdir) / 'metrics.jsonl'
  if not path.exists():
    return []
  # Only complete lines: a run may be writing the last one right now.
  return [json.loads(line) for line in path.read_text().split('\n')[:-1]]


def _snapshot(root):
  """Every file and directory under `root` with its size, mtime and sha256.

  Leaves out the workdir lock (lgae/workdir.py): each run rewrites who holds it,
  and it is a name tag, not saved work.
  """
  out = {}
  for path in sorted(pathlib.Path(root).rglob('*')):
    if path.name == workdir_lib.LOCK_FILE:
      continue
    stat = path.stat()
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else 'dir'
    out[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns, digest)
  return out


@functools.cache
def _abstract_state():
  return state_lib.abstract_state(_config(), parallel.make_mesh())


def _assert_latest_is_complete(workdir) -> int:
  """The latest listed checkpoint is the newest step dir, and restores to finite values."""
  steps, _ = _listing(workdir)
  assert steps, f'no checkpoint in {workdir}'
  reader = checkpointing.Checkpointer(str(workdir), read_only=True)
  try:
    latest = reader.latest_step()
    assert latest == max(steps), (latest, steps)
    assert reader.all_steps() == steps  # No half-written step is listed.
    checkpointing.check_resumable(reader.restore_config(), _config())
    state = reader.restore_state(_abstract_state())
  finally:
    reader.close()
  assert int(state.step) == latest
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(jax.device_get(state))
             if np.issubdtype(x.dtype, np.floating))
  return latest


def _wait_for(predicate, child, what, timeout=TIMEOUT):
  deadline = time.monotonic() + timeout
  while not predicate():
    if child.poll() is not None:
      raise AssertionError(f'run ended ({child.returncode}) before {what}:\n'
                           f'{child.output()[-3000:]}')
    if time.monotonic() > deadline:
      child.send(signal.SIGKILL)
      raise AssertionError(f'timed out waiting for {what}:\n{child.output()[-3000:]}')
    time.sleep(0.005)


def _loss_records(workdir):
  """step -> the loss values of every record logged for it (several if redone)."""
  by_step = {}
  for r in _records(workdir):
    losses = {k: v for k, v in r.items() if k.endswith('_loss')}
    if losses:
      by_step.setdefault(r['step'], []).append(losses)
  return by_step


# -----------------------------------------------------------------------------
# A NaN loss.
# -----------------------------------------------------------------------------


def test_nan_loss_names_step_and_loss_and_keeps_last_good_checkpoint(tfds_env, tmp_path,
                                                                     monkeypatch):
  del tfds_env
  real_train_step = train_step_lib.train_step

  def diverging_train_step(state, batch, **kwargs):
    """The real step, except that the update to step 5 diverges to NaN."""
    new_state, metrics = real_train_step(state, batch, **kwargs)
    bad = new_state.step == 5
    poison = lambda x: jnp.where(bad, jnp.nan, x)
    # A real divergence poisons the loss and the parameters it updates.
    metrics = dict(metrics, g_loss=poison(metrics['g_loss']))
    new_state = new_state.replace(gen=new_state.gen.replace(
        params=jax.tree.map(poison, new_state.gen.params)))
    return new_state, metrics

  monkeypatch.setattr(train_step_lib, 'train_step', diverging_train_step)
  workdir = tmp_path / 'run'
  config = _config(num_train_steps=8, checkpoint_every_steps=2, log_every_steps=2)
  with pytest.raises(train.NonFiniteLossError, match=r'^g_loss became nan at step 5; training '
                     r'stopped and this state was not checkpointed\.'):
    train.train_and_evaluate(config, str(workdir))
  # Checkpoints 2 and 4 only, the latest finite; no record past the last good log.
  assert _listing(workdir) == ([2, 4], [])
  assert _assert_latest_is_complete(workdir) == 4
  assert [r['step'] for r in _records(workdir)] == [2, 4]


# -----------------------------------------------------------------------------
# SIGTERM / SIGINT.
# -----------------------------------------------------------------------------


def _stopped_at(output, signal_name):
  match = re.search(rf'Received {signal_name}: saved a checkpoint at step (\d+) in (\S+); '
                    're-run the same command to resume', output)
  assert match, output[-3000:]
  return int(match.group(1))


def test_signal_during_eval_still_checkpoints_where_it_stops(tfds_env, tmp_path, monkeypatch,
                                                             caplog):
  """A signal after a step's checkpoint decision (here: during eval) is not lost."""
  del tfds_env
  evaluate = evaluation.evaluate

  def evaluate_then_sigterm(*args, **kwargs):
    scores = evaluate(*args, **kwargs)
    signal.raise_signal(signal.SIGTERM)  # As if it came while evaluating.
    return scores

  monkeypatch.setattr(evaluation, 'evaluate', evaluate_then_sigterm)
  workdir = tmp_path / 'run'
  config = _config(num_train_steps=6, eval_every_steps=2, checkpoint_every_steps=100,
                   log_every_steps=1)
  handler = signal.getsignal(signal.SIGTERM)
  with caplog.at_level('WARNING'):
    state = train.train_and_evaluate(config, str(workdir))
  stopped = int(state.step)
  assert stopped < 6
  assert f'Received SIGTERM: saved a checkpoint at step {stopped}' in caplog.text
  assert _assert_latest_is_complete(workdir) == stopped
  assert signal.getsignal(signal.SIGTERM) == handler  # Restored after the run.


def test_sigterm_and_sigint_checkpoint_the_current_step_and_resume_on_one_device(
    start_cli, tmp_path):
  workdir = tmp_path / 'run'
  # No scheduled checkpoint would happen: any checkpoint is the signal's.
  argv = _argv(workdir, num_train_steps=100_000, checkpoint_every_steps=50_000,
               log_every_steps=1)

  child = start_cli(argv, tmp_path / 'sigterm.log')
  _wait_for(lambda: len(_records(workdir)) >= 2, child, 'two logged steps')
  child.send(signal.SIGTERM)
  assert child.wait() == 0, child.output()[-3000:]
  stopped = _stopped_at(child.output(), 'SIGTERM')
  assert stopped >= 2 and _assert_latest_is_complete(workdir) == stopped

  child = start_cli(argv, tmp_path / 'sigint.log')  # The same command.
  _wait_for(lambda: _records(workdir)[-1]['step'] >= stopped + 2, child, 'two more steps')
  child.send(signal.SIGINT)
  assert child.wait() == 0, child.output()[-3000:]
  assert f'Resumed from {_ckpt_dir(workdir)} at step {stopped}.' in child.output()
  stopped_again = _stopped_at(child.output(), 'SIGINT')
  assert stopped_again >= stopped + 2
  assert _assert_latest_is_complete(workdir) == stopped_again

  # Written on 4 devices, resumed on 1; a shorter schedule keeps it resumable.
  end = stopped_again + 2
  child = start_cli(argv + [f'--config.num_train_steps={end}'], tmp_path / 'resume.log',
                    XLA_FLAGS='--xla_force_host_platform_device_count=1')
  assert child.wait() == 0, child.output()[-3000:]
  assert 'on 1 device(s)' in child.output()
  assert f'Resumed from {_ckpt_dir(workdir)} at step {stopped_again}.' in child.output()
  assert _listing(workdir)[0] == [stopped, stopped_again, end]
  # A graceful stop loses nothing: every step is logged once, none is redone.
  assert [r['step'] for r in _records(workdir)] == list(range(1, end + 1))


# -----------------------------------------------------------------------------
# A damaged checkpoint.
# -----------------------------------------------------------------------------


def test_truncated_checkpoint_is_a_clear_error_and_changes_nothing(start_cli, tfds_env,
                                                                    tmp_path):
  del tfds_env
  workdir = tmp_path / 'run'
  train.train_and_evaluate(_config(num_train_steps=4, checkpoint_every_steps=2), str(workdir))
  assert _listing(workdir) == ([2, 4], [])
  # Truncate the root of the latest state's OCDBT store, through which every
  # array is read. (Not just any file: many of the data files Orbax leaves in
  # the step dir are superseded by its final merge and never read again.)
  victim = _ckpt_dir(workdir) / '4' / 'state' / 'manifest.ocdbt'
  with open(victim, 'r+b') as f:
    f.truncate(victim.stat().st_size // 2)
  before = _snapshot(workdir)
  config = _config(num_train_steps=6, checkpoint_every_steps=2)
  expected = (rf'Checkpoint 4 in {re.escape(str(_ckpt_dir(workdir)))} does not match this model '
              r'or is damaged .*If it is damaged, delete '
              rf'{re.escape(str(_ckpt_dir(workdir) / "4"))} to resume from step 2\.')

  with pytest.raises(checkpointing.CheckpointError, match=expected):
    train.train_and_evaluate(config, str(workdir))
  assert _snapshot(workdir) == before

  child = start_cli(_argv(workdir, num_train_steps=6, checkpoint_every_steps=2),
                    tmp_path / 'cli.log')
  assert child.wait() == 1
  output = child.output()
  errors = [line for line in output.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and re.match('error: ' + expected, errors[0]), output[-3000:]
  assert _snapshot(workdir) == before

  # What the message says to do works.
  shutil.rmtree(_ckpt_dir(workdir) / '4')
  state = train.train_and_evaluate(config, str(workdir))
  assert int(state.step) == 6 and _listing(workdir)[0] == [2, 4, 6]

  # A damaged config beside the state: the same kind of message.
  (_ckpt_dir(workdir) / '6' / 'config' / 'metadata').write_text('{"model": {')
  before = _snapshot(workdir)
  with pytest.raises(checkpointing.CheckpointError, match=(
      rf'^Cannot read the config of checkpoint 6 in {re.escape(str(_ckpt_dir(workdir)))} '
      r'\(JSONDecodeError: .*\)\. If it is damaged, delete .*/checkpoints/6 to resume from '
      r'step 4\.$')):
    train.train_and_evaluate(_config(num_train_steps=8, checkpoint_every_steps=2), str(workdir))
  assert _snapshot(workdir) == before

  # Nothing after the one-line error: no tracebacks from Orbax's closed event loop.
  assert output[output.index(errors[0]):].count('Traceback') == 0, output[-3000:]


# -----------------------------------------------------------------------------
# kill -9.
# -----------------------------------------------------------------------------


def test_kill9_in_training_and_in_checkpoint_writes_then_same_command_finishes(
    start_cli, tmp_path):
  workdir = tmp_path / 'run'
  total = 7
  # A checkpoint every step (the last 3 kept): most of the time is spent
  # writing or deleting one, so kills land inside them.
  argv = _argv(workdir, num_train_steps=total, checkpoint_every_steps=1, log_every_steps=1)
  rng = random.Random(0)
  latest, leftovers = 0, set()
  for attempt in range(3):
    child = start_cli(argv, tmp_path / f'killed{attempt}.log')
    if attempt == 0:
      # Mid-training: a random moment after the first checkpoint.
      _wait_for(lambda: _listing(workdir)[0], child, 'the first checkpoint')
      time.sleep(rng.uniform(0.0, 0.3))
    else:
      # Mid-write: once this run has logged a step and Orbax is writing a
      # checkpoint (each step logs, then starts its checkpoint).
      logged = len(_records(workdir))
      _wait_for(lambda: len(_records(workdir)) > logged and _listing(workdir)[1], child,
                'a checkpoint write')
      time.sleep(rng.uniform(0.0, 0.02))
    child.send(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, child.output()[-3000:]
    if attempt:
      assert f'at step {latest}.' in child.output()  # It resumed before being killed.
    tmp = set(_listing(workdir)[1])
    previous, latest = latest, _assert_latest_is_complete(workdir)
    assert latest >= previous
    assert set(_listing(workdir)[1]) == tmp  # Reading (read-only) removes nothing.
    leftovers |= tmp
  # Kills inside a write leave its temporary dir; the test is void without one.
  assert leftovers, 'no kill landed inside a checkpoint write'
  assert latest < total, 'the killed runs finished: nothing left to resume'

  child = start_cli(argv, tmp_path / 'final.log')
  assert child.wait() == 0, child.output()[-3000:]
  assert f'Resumed from {_ckpt_dir(workdir)} at step {latest}.' in child.output()
  steps, tmp = _listing(workdir)
  assert not tmp  # The half-written steps were cleaned up...
  assert steps == [total - 2, total - 1, total]  # ...and max_checkpoints_to_keep held.
  assert _assert_latest_is_complete(workdir) == total

  # Metrics continue: every step is logged, the steps redone after a kill
  # (those after the last checkpoint) with exactly the same losses.
  losses = _loss_records(workdir)
  assert sorted(losses) == list(range(1, total + 1))
  redone = {step: records for step, records in losses.items() if len(records) > 1}
  assert redone  # At least the steps after the kills' last checkpoints.
  for step, records in redone.items():
    assert all(r == records[0] for r in records), (step, records)
  assert 'eval/recon_mse' in _records(workdir)[-1]


def test_a_crash_in_the_final_evaluation_keeps_the_final_checkpoint(tfds_env, tmp_path,
                                                                    monkeypatch):
  """The last step is checkpointed before the end-of-run evaluation starts, so an
  evaluation that fails (or is killed) costs no training: the checkpoint is there."""
  del tfds_env

  def failing_evaluate(*args, **kwargs):
    raise RuntimeError('evaluation failed')

  monkeypatch.setattr(evaluation, 'evaluate', failing_evaluate)
  workdir = tmp_path / 'run'
  config = _config(num_train_steps=5, eval_every_steps=-1, checkpoint_every_steps=100,
                   log_every_steps=1)
  with pytest.raises(RuntimeError, match='evaluation failed'):
    train.train_and_evaluate(config, str(workdir))
  assert _assert_latest_is_complete(workdir) == 5
