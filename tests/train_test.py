"""End to end: `train_and_evaluate` on a tiny config, and the real CLI on real MNIST."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from configs import mnist
from lgae import train
from lgae.core import checkpointing
from tests import fake_mnist

REPO = pathlib.Path(__file__).resolve().parents[1]
REAL_MNIST = REPO.parent / 'shared' / 'data' / 'mnist'


def _records(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def fake_data_dir(tmp_path_factory):
  return fake_mnist.prepare(str(tmp_path_factory.mktemp('fake_mnist')))


def test_train_and_evaluate_end_to_end_and_resume(tmp_path, fake_data_dir):
  config = mnist.get_config('smoke')  # 6 steps; log every 2, eval and checkpoint every 3.
  with config.unlocked():
    config.dataset.data_dir = fake_data_dir
  workdir = str(tmp_path / 'run')
  if True:  # pylint: disable=using-constant-test
    state = train.train_and_evaluate(config, workdir)
    assert int(state.step) == 6
    records = _records(workdir)
    assert [r['step'] for r in records] == [2, 3, 4, 6]
    train_records = [r for r in records if 'recon_loss' in r]
    for r in train_records:
      for key in ('recon_loss', 'd_loss', 'g_loss', 'mi_cat_loss', 'mi_cont_loss',
                  'steps_per_sec'):
        assert np.isfinite(r[key]), key
    assert 'eval/test_error_hungarian' in records[1] and 'eval/recon_mse' in records[-1]
    assert 0 <= records[-1]['eval/test_error_hungarian'] <= 100
    assert any(name.startswith('events.out.tfevents') for name in os.listdir(workdir))
    ckpt = checkpointing.Checkpointer(workdir, read_only=True)
    assert ckpt.all_steps() == [3, 6]

    # Same command with a longer schedule resumes from step 6.
    with config.unlocked():
      config.num_train_steps = 8
    state = train.train_and_evaluate(config, workdir)
    assert int(state.step) == 8
    assert [r['step'] for r in _records(workdir)][4:] == [8]
    assert checkpointing.Checkpointer(workdir, read_only=True).latest_step() == 8

    # eval_every_steps=0: no evaluation in the loop, not even at the end.
    with config.unlocked():
      config.num_train_steps, config.eval_every_steps = 10, 0
    train.train_and_evaluate(config, workdir)
    last = _records(workdir)[-1]
    assert last['step'] == 10 and 'recon_loss' in last
    assert not any(key.startswith('eval/') for key in last), last


def test_default_workdir_is_stable_and_ignores_schedule():
  a = mnist.get_config()
  b = mnist.get_config()
  with b.unlocked():
    b.num_train_steps = 123
    b.log_every_steps = 7
  assert train.default_workdir(a) == train.default_workdir(b)
  with b.unlocked():
    b.seed = 3
  assert train.default_workdir(a) != train.default_workdir(b)
  assert 'seed3' in train.default_workdir(b)


@pytest.fixture(scope='module')
def real_mnist_data_dir(tmp_path_factory):
  """A tfds data dir holding real MNIST: $TFDS_DATA_DIR if prepared there, else prepared now."""
  if not REAL_MNIST.is_dir():
    pytest.skip(f'no real MNIST at {REAL_MNIST}')
  from lgae.data import mnist_local  # pylint: disable=g-import-not-at-top
  data_dir = os.environ.get('TFDS_DATA_DIR') or str(tmp_path_factory.mktemp('tfds'))
  mnist_local.prepare(str(REAL_MNIST), data_dir)
  return data_dir


def test_cli_on_real_mnist_trains_and_resumes(tmp_path, real_mnist_data_dir):
  """The user's command on real MNIST: a few steps, then resume to more steps."""
  workdir = tmp_path / 'w'
  # One device: the paper-size model compiles and runs fastest unpartitioned.
  env = dict(os.environ, TFDS_DATA_DIR=real_mnist_data_dir, XLA_FLAGS='')
  # :paper (the joint step from step 0): the default's stage 2 starts after 2,340 steps.
  base = [sys.executable, '-m', 'experiments.main', '--config=configs/mnist.py:paper',
          f'--workdir={workdir}', '--config.batch_size=32', '--config.log_every_steps=2',
          '--config.checkpoint_every_steps=4', '--config.eval_every_steps=-1',
          '--config.eval_batch_size=2000', '--config.eval_generation=false']
  run = subprocess.run(base + ['--config.num_train_steps=4'], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  assert checkpointing.Checkpointer(str(workdir), read_only=True).latest_step() == 4
  run = subprocess.run(base + ['--config.num_train_steps=6'], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  assert 'Resumed from' in run.stderr and 'at step 4' in run.stderr
  records = _records(workdir)
  assert [r['step'] for r in records] == [2, 4, 6]
  assert all(np.isfinite(r['recon_loss']) for r in records)
  assert 'eval/test_error_hungarian' in records[-1]  # -1: evaluate at the end only.


def test_cli_without_workdir_prints_default(tmp_path, real_mnist_data_dir):
  env = dict(os.environ, TFDS_DATA_DIR=real_mnist_data_dir)
  run = subprocess.run(
      [sys.executable, '-m', 'experiments.main', f'--config={REPO}/configs/mnist.py:smoke',
       '--config.num_train_steps=2', '--config.seed=3'],
      cwd=tmp_path, env=dict(env, PYTHONPATH=str(REPO)), capture_output=True, text=True,
      timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  assert 'No --workdir given; using lgae_runs/mnist_seed3_' in run.stderr
  assert len(list((tmp_path / 'lgae_runs').iterdir())) == 1


def test_the_smallest_eval_split_validation_accepts_is_scored(tmp_path, fake_data_dir):
  from lgae.core import config_validation   # pylint: disable=g-import-not-at-top
  smallest = config_validation.MIN_EVAL_EXAMPLES
  config = mnist.get_config('smoke')
  with config.unlocked():
    config.dataset.data_dir = fake_data_dir
    config.dataset.eval_split = f'test[:{smallest - 1}]'
    config.num_train_steps = 2
    config.eval_every_steps = -1
  with pytest.raises(config_validation.ConfigError, match=f'needs at least {smallest}'):
    train.train_and_evaluate(config, str(tmp_path / 'refused'))
  assert not (tmp_path / 'refused').exists()
  config.dataset.eval_split = f'test[:{smallest}]'
  train.train_and_evaluate(config, str(tmp_path / 'run'))
  final = _records(str(tmp_path / 'run'))[-1]
  # Every score of the final evaluation, the k-NN ones included.
  assert np.isfinite(final['eval/latent_neighbour_agreement'])
  assert np.isfinite(final['eval/cluster_neighbour_agreement'])


def test_the_run_logs_its_timeline_and_time_to_accuracy_reads_it(tmp_path, fake_data_dir):
  config = mnist.get_config('smoke')  # eval every 3 steps.
  with config.unlocked():
    config.dataset.data_dir = fake_data_dir
    config.num_train_steps = 3
  workdir = tmp_path / 'run'
  train.train_and_evaluate(config, str(workdir))
  with config.unlocked():
    config.num_train_steps = 6
  train.train_and_evaluate(config, str(workdir))   # A resume: a second process start.
  with open(workdir / 'timeline.jsonl') as f:
    events = [json.loads(line) for line in f]
  assert [(e['event'], e['step']) for e in events] == [('start', 0), ('end', 3), ('start', 3),
                                                       ('end', 6)]
  first_record = _records(str(workdir))[0]
  assert events[0]['process_start'] <= first_record['time']
  # As a user runs it (in-process, its flags would clash with other CLIs' in this test process).
  result = subprocess.run([sys.executable, '-m', 'experiments.time_to_accuracy',
                           f'--workdir={workdir}', '--thresholds=100,-1'], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.splitlines()
  assert lines[0].endswith('2 process start(s)')
  assert 'test_error_hungarian <= 100: ' in lines[1] and '(step 3,' in lines[1]
  assert lines[2].endswith('<= -1: not reached')
  assert lines[3].startswith('  last evaluation: test_error_hungarian = ') and 'at step 6' in lines[3]
