"""A SIGTERM before the first training step still leaves a checkpoint, and resuming from it is exact."""

import os
import signal

import jax
import numpy as np
import pytest

from configs import mnist
from lgae import checkpointing, input_pipeline, train
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
from lgae import interrupts
with interrupts.StopOnSignal() as stop:
  os.kill(os.getpid(), signal.SIGTERM)
  time.sleep(0.2)
  print('first:', stop.requested, flush=True)
  os.kill(os.getpid(), signal.SIGTERM)
  time.sleep(5)
  print('still alive', flush=True)
'''
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert 'first: True' in result.stdout
  assert 'still alive' not in result.stdout
  assert result.returncode == -signal.SIGTERM
