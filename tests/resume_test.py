"""Exact resume: an interrupted and resumed run ends where an uninterrupted one does.

On CPU the two runs end with bitwise-equal parameters, optimiser states,
BatchNorm statistics, RNG and step, and log the same losses at every step:
a step is a pure function of (state, batch) (its random draws come from
fold_in(state.rng, state.step)), the batch at step k is a pure function of
(config.seed, k) (`input_pipeline.train_iterator`), and a checkpoint restores
the state bit for bit. Runs killed with SIGKILL resume exactly too: see
fault_injection_test, where the steps redone after each kill log the same
losses as the first time.
"""

import json
import os

import jax
import numpy as np
import pytest

from configs import mnist
from lgae import train
from lgae.core import checkpointing, parallel
from lgae.core import state as state_lib
from tests import fake_mnist


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return fake_mnist.prepare(str(tmp_path_factory.mktemp('fake_mnist')))


def _config(**overrides):
  config = mnist.get_config('smoke')
  with config.unlocked():
    config.update(overrides)
  return config


def _restore(workdir, config, step):
  reader = checkpointing.Checkpointer(str(workdir), read_only=True)
  return jax.device_get(
      reader.restore_state(state_lib.abstract_state(config, parallel.make_mesh()), step=step))


def _records(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def _without_timing(record):
  return {k: v for k, v in record.items() if k not in ('steps_per_sec', 'time')}


def test_interrupted_and_resumed_run_is_bitwise_identical(data_dir, tmp_path, monkeypatch):
  monkeypatch.setenv('TFDS_DATA_DIR', data_dir)
  # 64 examples in batches of 16: 4 steps per epoch. Stopping at step 5
  # resumes inside epoch 1, so both the skipped epoch and the skipped batch
  # of the current one must be reproduced.
  schedule = dict(checkpoint_every_steps=4, log_every_steps=1, eval_every_steps=-1)
  config = _config(num_train_steps=8, **schedule)
  straight, interrupted = tmp_path / 'straight', tmp_path / 'interrupted'

  train.train_and_evaluate(config, str(straight))
  train.train_and_evaluate(_config(num_train_steps=5, **schedule), str(interrupted))
  assert checkpointing.Checkpointer(str(interrupted), read_only=True).latest_step() == 5
  train.train_and_evaluate(config, str(interrupted))  # The same call as the straight run.

  a, b = _restore(straight, config, 8), _restore(interrupted, config, 8)
  leaves_a = jax.tree_util.tree_leaves_with_path(a)
  leaves_b = jax.tree_util.tree_leaves_with_path(b)
  assert [jax.tree_util.keystr(k) for k, _ in leaves_a] == [
      jax.tree_util.keystr(k) for k, _ in leaves_b]
  assert len(leaves_a) > 50  # Params, Adam moments, BatchNorm stats, rng, step.
  for (path, x), (_, y) in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))

  # Same losses at every step, and the same final evaluation. (The
  # interrupted run also evaluated at step 5, where its first part ended.)
  records_a, records_b = _records(straight), _records(interrupted)
  assert [r['step'] for r in records_a] == [r['step'] for r in records_b] == list(range(1, 9))
  for ra, rb in zip(records_a, records_b):
    losses_a = {k: v for k, v in ra.items() if not k.startswith('eval/')}
    losses_b = {k: v for k, v in rb.items() if not k.startswith('eval/')}
    assert _without_timing(losses_a) == _without_timing(losses_b), ra['step']
  eval_a = {k: v for k, v in records_a[-1].items() if k.startswith('eval/')}
  eval_b = {k: v for k, v in records_b[-1].items() if k.startswith('eval/')}
  assert eval_a and eval_a == eval_b
  assert 'eval/recon_mse' in records_b[4]  # Step 5.


def test_a_record_after_a_resume_between_log_steps_says_how_many_steps_it_averages(
    data_dir, tmp_path, monkeypatch):
  monkeypatch.setenv('TFDS_DATA_DIR', data_dir)
  # Checkpoints every 3 steps, logs every 2: a run stopped at its step-3
  # checkpoint resumes inside the log window (2, 4].
  schedule = dict(checkpoint_every_steps=3, log_every_steps=2, eval_every_steps=0)
  straight, interrupted = tmp_path / 'straight', tmp_path / 'interrupted'
  train.train_and_evaluate(_config(num_train_steps=4, **schedule), str(straight))
  train.train_and_evaluate(_config(num_train_steps=3, **schedule), str(interrupted))
  train.train_and_evaluate(_config(num_train_steps=4, **schedule), str(interrupted))

  a, b = _records(straight), _records(interrupted)
  assert [(r['step'], r['steps_averaged']) for r in a] == [(2, 2), (4, 2)]
  assert [(r['step'], r['steps_averaged']) for r in b] == [(2, 2), (3, 1), (4, 1)]
  # The same window gives the same record; step 4's straight record is the
  # mean of the interrupted run's steps 3 and 4 (each step's values are the same).
  assert _without_timing(a[0]) == _without_timing(b[0])
  for key in ('d_loss', 'g_loss', 'recon_loss'):
    np.testing.assert_allclose(a[1][key], (b[1][key] + b[2][key]) / 2, rtol=1e-6, err_msg=key)
  # No step was timed yet when the resumed run logged step 4: no rate, not 0.0.
  assert 'steps_per_sec' not in b[2]
  assert a[1]['steps_per_sec'] > 0


def test_resuming_on_other_data_is_refused_unless_asked(data_dir, tmp_path, monkeypatch):
  monkeypatch.setenv('TFDS_DATA_DIR', data_dir)
  schedule = dict(checkpoint_every_steps=3, log_every_steps=3, eval_every_steps=0)
  workdir = tmp_path / 'run'
  train.train_and_evaluate(_config(num_train_steps=3, **schedule), str(workdir))
  before = {p: p.read_bytes() for p in workdir.rglob('*') if p.is_file()}
  other = _config(num_train_steps=4, **schedule)
  other.dataset.train_split = 'train[:50%]'
  with pytest.raises(checkpointing.CheckpointError, match=r"train_split='train'.*--allow_new_data"):
    train.train_and_evaluate(other, str(workdir))
  assert {p: p.read_bytes() for p in workdir.rglob('*') if p.is_file()} == before
  # Another dataset, not even prepared here: the workdir's refusal comes first (not "prepare it").
  unprepared = _config(num_train_steps=4, **schedule)
  unprepared.dataset.name = 'fashion_mnist'
  unprepared.dataset.download = False
  with pytest.raises(checkpointing.CheckpointError, match=r"dataset.name='mnist'.*--allow_new_data"):
    train.train_and_evaluate(unprepared, str(workdir))
  assert {p: p.read_bytes() for p in workdir.rglob('*') if p.is_file()} == before
  # Fine-tuning on the new data, when asked for.
  state = train.train_and_evaluate(other, str(workdir), allow_new_data=True)
  assert int(state.step) == 4
