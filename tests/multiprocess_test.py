"""Several processes on JAX's distributed runtime train exactly as one process does.

One chain of runs on the smoke config and a fake 64-image MNIST, each link a
different process count, checked against one straight single-process run
(4 devices, the same global batch):

1. one process, steps 0 -> 6 (this pytest process, 4 devices);
2. two processes (`python -m experiments.main --coordinator_address=...`,
   2 devices each, gloo over 127.0.0.1) resume that checkpoint and train on;
   once they have checkpointed step 10, process 1 is killed with SIGKILL
   (and process 0 too, as a scheduler would end the job; alone it would
   abort once the coordination service misses process 1's heartbeats);
3. two processes resume the killed run; after step 14 process 1 alone gets
   SIGTERM: both stop at the same step with one checkpoint, exit code 0;
4. one process resumes the two-process checkpoint and finishes.

What this proves:
* a 1-process checkpoint restores in 2 processes (2. resumes at step 6) and
  a 2-process checkpoint in 1 (4. resumes where 3. stopped);
* the 2 processes train as 1: their checkpoint at step 10 equals the
  straight run's (float tolerance: gradients are summed in another order),
  and so do their logged losses and their evaluation scores at step 8, and
  the chain's final state;
* only process 0 writes metrics.jsonl (each step once) and TensorBoard;
* killing a process mid-run leaves a workdir that resumes (3.);
* a signal to one process stops all of them at one step, checkpointed.

The other tests check the pieces in-process: each process reads its own rows
of the same global batches, the per-process workdir locks, and the flags.
"""

import glob
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import mnist
from lgae import train
from lgae.core import checkpointing, parallel
from lgae.data import input_pipeline
from lgae.core import state as state_lib
from lgae.core import workdir as workdir_lib
from tests import fake_mnist

REPO = pathlib.Path(__file__).resolve().parents[1]
# Seconds for the two-process link; generous because the machine may be shared
# (150 s ran out with 7 jobs on 2 cores).
TIMEOUT = 300
# Checkpoints every 2 steps, an evaluation at 8 (and 16, 24): the processes
# are killed after step 10, long before 24.
SCHEDULE = dict(num_train_steps=24, checkpoint_every_steps=2, log_every_steps=2,
                eval_every_steps=8, max_checkpoints_to_keep=50)
KILL_AFTER_STEP = 10


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return fake_mnist.prepare(str(tmp_path_factory.mktemp('fake_mnist')))


def _config(data_dir, **overrides):
  config = mnist.get_config('smoke')
  with config.unlocked():
    config.dataset.data_dir = data_dir
    config.update(dict(SCHEDULE, **overrides))
  return config


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _launch(workdir, data_dir, num_processes, log_dir):
  """`num_processes` CLI processes of one run, 2 CPU devices each."""
  for old in glob.glob(os.path.join(log_dir, '*.log')):
    os.remove(old)
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=2')
  address = f'127.0.0.1:{_free_port()}'
  flags = [f'--config.{k}={v}' for k, v in SCHEDULE.items()]
  procs = []
  for i in range(num_processes):
    log = open(os.path.join(log_dir, f'process{i}.log'), 'w')  # pylint: disable=consider-using-with
    procs.append(subprocess.Popen(
        [sys.executable, '-m', 'experiments.main', '--config=configs/mnist.py:smoke',
         f'--config.dataset.data_dir={data_dir}', f'--workdir={workdir}', *flags,
         f'--coordinator_address={address}', f'--num_processes={num_processes}',
         f'--process_id={i}'],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
  return procs


def _logs(log_dir):
  return '\n'.join(f'--- {p}\n' + pathlib.Path(p).read_text()[-3000:]
                   for p in sorted(glob.glob(os.path.join(log_dir, '*.log'))))


def _wait_for_checkpoint(workdir, step, procs, log_dir):
  deadline = time.monotonic() + TIMEOUT
  # Orbax renames a step's directory into place once it is complete.
  done = os.path.join(checkpointing.checkpoint_dir(workdir), str(step))
  while not os.path.isdir(done):
    assert all(p.poll() is None for p in procs), (
        f'a process ended before step {step}:\n{_logs(log_dir)}')
    assert time.monotonic() < deadline, f'no checkpoint {step} in time:\n{_logs(log_dir)}'
    time.sleep(0.05)


def _restore(workdir, config, step):
  reader = checkpointing.Checkpointer(str(workdir), read_only=True)
  try:
    return jax.device_get(
        reader.restore_state(state_lib.abstract_state(config, parallel.make_mesh()), step=step))
  finally:
    reader.close()


def _records(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return {r['step']: r for r in map(json.loads, f)}


def _assert_close_trees(a, b, what):
  leaves_a = jax.tree_util.tree_leaves_with_path(a)
  leaves_b = jax.tree_util.tree_leaves_with_path(b)
  assert [jax.tree_util.keystr(k) for k, _ in leaves_a] == [
      jax.tree_util.keystr(k) for k, _ in leaves_b]
  assert len(leaves_a) > 50   # Params, Adam moments, BatchNorm stats, rng, step.
  for (path, x), (_, y) in zip(leaves_a, leaves_b):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5,
                               err_msg=f'{what}: {jax.tree_util.keystr(path)}')


def test_two_processes_train_resume_and_survive_a_kill_like_one(data_dir, tmp_path):
  config = _config(data_dir)
  straight, chain = str(tmp_path / 'straight'), str(tmp_path / 'chain')
  train.train_and_evaluate(config, straight)                                # Reference.
  train.train_and_evaluate(_config(data_dir, num_train_steps=6), chain)   # Link 1.

  # Link 2: two processes resume the 1-process checkpoint at step 6.
  log_dir = tmp_path / 'logs'
  log_dir.mkdir()
  procs = _launch(chain, data_dir, 2, str(log_dir))
  try:
    _wait_for_checkpoint(chain, KILL_AFTER_STEP, procs, log_dir)
    procs[1].send_signal(signal.SIGKILL)
    # Its peer would wait for it in the next collective; a scheduler ends the
    # job: kill it too (at a moment that may fall inside a checkpoint write).
    procs[0].send_signal(signal.SIGKILL)
  finally:
    for p in procs:
      p.kill()
      p.wait()
  killed_at = checkpointing.Checkpointer(chain, read_only=True).latest_step()
  assert KILL_AFTER_STEP <= killed_at < config.num_train_steps, _logs(log_dir)
  assert '2 process(es) | steps 6 -> 24 (resumed)' in _logs(log_dir)
  # One lock file per process index: process 1 did not refuse process 0's workdir.
  assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(chain, '.lgae.lock*'))) == [
      '.lgae.lock', '.lgae.lock.1']

  # The two processes trained as one: same checkpoint, losses and eval scores.
  _assert_close_trees(_restore(chain, config, KILL_AFTER_STEP),
                      _restore(straight, config, KILL_AFTER_STEP), 'step 10, 2 vs 1 process')
  ref, got = _records(straight), _records(chain)
  assert 'eval/recon_mse' in got[8] and 'eval/test_error_hungarian' in got[8]
  for step in range(2, KILL_AFTER_STEP + 1, 2):
    for key, value in ref[step].items():
      if key not in ('time', 'steps_per_sec'):
        np.testing.assert_allclose(got[step][key], value, rtol=1e-4, atol=1e-5,
                                   err_msg=f'step {step} {key}')
  # Process 0 alone wrote: one record per step (metrics.jsonl lines are not
  # duplicated) and one TensorBoard file per run (link 1's, link 2's).
  with open(os.path.join(chain, 'metrics.jsonl')) as f:
    steps = [json.loads(line)['step'] for line in f]
  assert len(steps) == len(set(steps))
  assert len(glob.glob(os.path.join(chain, 'events.out.tfevents.*'))) == 2

  # Link 3: two processes resume the killed run; SIGTERM to process 1 alone.
  procs = _launch(chain, data_dir, 2, str(log_dir))
  try:
    _wait_for_checkpoint(chain, killed_at + 4, procs, log_dir)
    procs[1].send_signal(signal.SIGTERM)
    codes = [p.wait(timeout=TIMEOUT) for p in procs]
  finally:
    for p in procs:
      p.kill()
      p.wait()
  logs = _logs(log_dir)
  assert codes == [0, 0], logs
  assert f'steps {killed_at} -> 24 (resumed)' in logs
  stopped_at = checkpointing.Checkpointer(chain, read_only=True).latest_step()
  assert killed_at + 4 <= stopped_at < config.num_train_steps, logs
  # Each process says it saved the same step; process 0 names the other's signal.
  assert logs.count(f'saved a checkpoint at step {stopped_at}') == 2, logs
  assert 'Received SIGTERM' in logs and 'a signal (on another process of this run)' in logs

  # Link 4: one process resumes the 2-process checkpoint and finishes the run.
  state = train.train_and_evaluate(config, chain)
  assert int(state.step) == config.num_train_steps
  _assert_close_trees(_restore(chain, config, config.num_train_steps),
                      _restore(straight, config, config.num_train_steps), 'final, chain vs 1')
  final_ref, final_got = _records(straight)[24], _records(chain)[24]
  for key in ('eval/recon_mse', 'eval/test_error_hungarian', 'eval/nmi'):
    np.testing.assert_allclose(final_got[key], final_ref[key], rtol=1e-4, err_msg=key)


def test_each_process_reads_its_block_of_the_same_global_batches(data_dir):
  config = _config(data_dir)
  whole = input_pipeline.train_iterator(config, start_step=5)
  parts = [input_pipeline.train_iterator(config, start_step=5, process_index=i, process_count=2)
           for i in range(2)]
  for _ in range(3):   # Across an epoch boundary (4 batches per epoch).
    batch = next(whole)
    halves = [next(p) for p in parts]
    assert halves[0]['image'].shape[0] == config.batch_size // 2
    for key in batch:
      np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), batch[key])
  # Evaluation: 32 test examples in padded batches of 32 (the smoke config).
  whole = list(input_pipeline.eval_iterator(config))
  parts = [list(input_pipeline.eval_iterator(config, process_index=i, process_count=4))
           for i in range(4)]
  assert [len(p) for p in parts] == [len(whole)] * 4
  for key in whole[0]:
    np.testing.assert_array_equal(
        np.concatenate([p[0][key] for p in parts]), whole[0][key])


def test_global_batch_must_split_over_processes_and_devices():
  with pytest.raises(ValueError, match=r'batch of 30 does not split over 4 processes'):
    input_pipeline.process_rows(30, 0, 4)
  assert input_pipeline.process_rows(32, 3, 4) == slice(24, 32)
  config = mnist.get_config('smoke')
  with config.unlocked():
    config.batch_size = 12
  from lgae.core import config_validation  # pylint: disable=g-import-not-at-top
  with pytest.raises(config_validation.ConfigError,
                     match=r'batch_size=12 does not divide over the 8 devices of 2 processes '
                           r'\(2 x 4 local devices\)'):
    config_validation.validate(config, num_devices=8, num_processes=2, check_dataset=False)


def test_processes_of_one_run_share_the_workdir_but_a_second_run_is_refused(tmp_path):
  workdir = str(tmp_path / 'run')
  with workdir_lib.hold(workdir, 0), workdir_lib.hold(workdir, 1):
    # Process 1 of the same run is not refused by process 0's lock ...
    for index in (0, 1):
      # ... but the same index of another run is (as another process would be).
      probe = subprocess.run(
          [sys.executable, '-c', 'import sys; from lgae.core import workdir as w\n'
           f'with w.hold({workdir!r}, {index}): pass'],
          cwd=REPO, capture_output=True, text=True, check=False)
      assert probe.returncode != 0 and 'is in use by another run' in probe.stderr, index
  assert os.path.exists(os.path.join(workdir, '.lgae.lock.1'))


@pytest.mark.parametrize('args, match', [
    (dict(coordinator_address='127.0.0.1:1234'), '--num_processes, --process_id missing'),
    (dict(coordinator_address='h:1', num_processes=2, process_id=2), r'numbered 0\.\.N-1'),
])
def test_partial_or_inconsistent_flags_are_one_clear_error(args, match):
  with pytest.raises(parallel.DistributedSetupError, match=match):
    parallel.initialize_distributed(**args)


def test_cluster_is_detected_only_from_a_multi_process_launcher(monkeypatch):
  for name in list(os.environ):
    if name.startswith(('SLURM_', 'OMPI_', 'TPU_', 'MEGASCALE_')):
      monkeypatch.delenv(name)
  assert parallel.cluster_environment() is None
  slurm = dict(SLURM_JOB_ID='7', SLURM_STEP_NODELIST='n[1-2]', SLURM_NTASKS='1',
               SLURM_PROCID='0', SLURM_LOCALID='0')
  for k, v in slurm.items():
    monkeypatch.setenv(k, v)
  assert parallel.cluster_environment() is None   # A one-task job: one process.
  monkeypatch.setenv('SLURM_NTASKS', '2')
  assert parallel.cluster_environment() == 'SLURM'
  for k in slurm:
    monkeypatch.delenv(k)
  monkeypatch.setenv('TPU_WORKER_HOSTNAMES', 'w0,w1')
  assert parallel.cluster_environment() == 'Cloud TPU'
