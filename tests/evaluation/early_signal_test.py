"""A SIGTERM before the first training step still leaves a checkpoint, and resuming from it is exact."""

import os
import signal

import jax
import numpy as np
import pytest

from configs import mnist
from lgae import train
from lgae.core import checkpointing
from lgae.data import input_pipeline
from tests import fake_mnist


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return fake_mnist.prepare(str(tmp_path_factory.mktemp('fake_mnist')))


def _config(data_dir):
  config = mnist.get_config('smoke')
  with config.unlocked():
    config.dataset.data_dir = data_dir
  return config


def test_sigterm_before_the_first_step_checkpoints_and_resumes_exactly(tmp_path, data_dir,
                                                                      monkeypatch):
  config = _config(data_dir)
  straight = train.train_and_evaluate(config, str(tmp_path / 'straight'))

  # The signal arrives during the data checks, before any state exists.
  real_check = input_pipeline.check_available
  def check_then_signal(cfg):
    real_check(cfg)
    os.kill(os.getpid(), signal.SIGTERM)
  monkeypatch.setattr(input_pipeline, 'check_available', check_then_signal)
  workdir = str(tmp_path / 'interrupted')
  state = train.train_and_evaluate(config, workdir)   # returns normally: exit 0 from the CLI.
  assert int(state.step) == 0
  assert checkpointing.Checkpointer(workdir, read_only=True).all_steps() == [0]

  monkeypatch.setattr(input_pipeline, 'check_available', real_check)
  resumed = train.train_and_evaluate(config, workdir)
  for a, b in zip(jax.tree.leaves(jax.device_get(straight)), jax.tree.leaves(jax.device_get(resumed))):
    np.testing.assert_array_equal(a, b)


def test_a_second_signal_kills_at_once():
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  code = '''
import os, signal, time
from lgae.core import interrupts
with interrupts.StopOnSignal() as stop:
  os.kill(os.getpid(), signal.SIGTERM)
  time.sleep(0.2)
  print('first:', stop.requested, flush=True)
  os.kill(os.getpid(), signal.SIGTERM)
  time.sleep(5)
  print('still alive', flush=True)
'''
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
  assert 'first: True' in result.stdout
  assert 'still alive' not in result.stdout
  assert result.returncode == -signal.SIGTERM


def _assert_same(a, b):
  for x, y in zip(jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))):
    np.testing.assert_array_equal(x, y)


def test_sigterm_during_classifier_training_checkpoints_and_resumes_exactly(tmp_path, data_dir,
                                                                          monkeypatch):
  from lgae.evaluation import classifier as classifier_lib  # pylint: disable=g-import-not-at-top
  config = _config(data_dir)
  with config.unlocked():
    config.eval_generation = True   # the run trains (then caches) the classifier first.
  straight = train.train_and_evaluate(config, str(tmp_path / 'straight'))

  real_get = classifier_lib.get_or_train_classifier
  trained = []
  def train_then_signal(cfg, *args, **kwargs):
    clf = real_get(cfg, *args, **kwargs)
    trained.append(clf)
    os.kill(os.getpid(), signal.SIGTERM)   # as if it came while the classifier trained.
    return clf
  monkeypatch.setattr(classifier_lib, 'get_or_train_classifier', train_then_signal)
  workdir = str(tmp_path / 'interrupted')
  state = train.train_and_evaluate(config, workdir)
  assert trained and int(state.step) == 0
  assert checkpointing.Checkpointer(workdir, read_only=True).all_steps() == [0]

  monkeypatch.setattr(classifier_lib, 'get_or_train_classifier', real_get)
  _assert_same(straight, train.train_and_evaluate(config, workdir))


def test_sigterm_during_restore_keeps_the_checkpoint_and_resumes_exactly(tmp_path, data_dir,
                                                                       monkeypatch):
  config = _config(data_dir)
  straight = train.train_and_evaluate(config, str(tmp_path / 'straight'))

  workdir = str(tmp_path / 'interrupted')
  first = config.copy_and_resolve_references()
  with first.unlocked():
    first.num_train_steps = config.checkpoint_every_steps   # stops at a scheduled checkpoint.
  train.train_and_evaluate(first, workdir)
  reader = checkpointing.Checkpointer(workdir, read_only=True)
  saved = reader.all_steps()
  reader.close()
  assert saved == [config.checkpoint_every_steps]
  files_before = sorted(os.listdir(checkpointing.checkpoint_dir(workdir)))

  real_restore = train.restore_or_create_state
  def restore_then_signal(*args, **kwargs):
    restored = real_restore(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)   # as if it came while restoring.
    return restored
  monkeypatch.setattr(train, 'restore_or_create_state', restore_then_signal)
  state = train.train_and_evaluate(config, workdir)
  # The current step already has its checkpoint: nothing is rewritten or lost.
  assert int(state.step) == config.checkpoint_every_steps
  assert sorted(os.listdir(checkpointing.checkpoint_dir(workdir))) == files_before

  monkeypatch.setattr(train, 'restore_or_create_state', real_restore)
  _assert_same(straight, train.train_and_evaluate(config, workdir))


_SLOW_DISK_RUN = '''
import sys, time
from configs import mnist
from lgae import train
from lgae.core import checkpointing
real_save = checkpointing.Checkpointer.save
def slow_save(self, *args, **kwargs):   # A slow disk: the run lives on after a signal.
  real_save(self, *args, **kwargs)
  # Saves are async: wait until step 1 is on disk, so the signals below test
  # the kill, not a race with Orbax's background commit (a loaded CI machine
  # once took longer than the 0.5 s between them and had no checkpoint yet).
  self.wait()
  print('saved', flush=True)
  # Python code keeps running meanwhile, as in the training loop, so the first
  # signal's handler runs before the second arrives (see lgae.core.interrupts).
  for _ in range(300):
    time.sleep(0.01)
checkpointing.Checkpointer.save = slow_save
config = mnist.get_config('smoke')
config.dataset.data_dir = sys.argv[2]
config.checkpoint_every_steps = 1
train.train_and_evaluate(config, sys.argv[1])
print('finished', flush=True)
'''


def test_a_second_signal_kills_a_run_at_once_and_its_workdir_resumes_exactly(tmp_path, data_dir):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / 'killed')
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  child = subprocess.Popen([sys.executable, '-c', _SLOW_DISK_RUN, workdir, data_dir], cwd=repo,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  try:
    assert child.stdout.readline().strip() == 'saved'   # step 1's checkpoint is written.
    child.send_signal(signal.SIGTERM)   # honoured after the (slow) save...
    time.sleep(0.5)
    child.send_signal(signal.SIGTERM)   # ...but the impatient second one kills at once.
    assert child.wait(timeout=60) == -signal.SIGTERM
  finally:
    child.kill()
  assert 'finished' not in child.stdout.read()
  reader = checkpointing.Checkpointer(workdir, read_only=True)
  assert reader.all_steps() == [1]
  reader.close()

  config = _config(data_dir)
  straight = train.train_and_evaluate(config, str(tmp_path / 'straight'))
  _assert_same(straight, train.train_and_evaluate(config, workdir))
