"""Smoke test of the benchmark command (its figures are measurements, not tested values)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests import fake_mnist

REPO = pathlib.Path(__file__).resolve().parents[1]
KEYS = {'config', 'ms_per_step', 'images_per_sec', 'compile_s', 'gflops_per_step',
        'achieved_gflops', 'cpu_ms_per_step', 'minor_faults_per_step', 'warmup_steps', 'malloc_tuned', 'devices',
        'batch_size', 'input_images_per_sec'}


@pytest.fixture(scope='module')
def fake_data_dir(tmp_path_factory):
  return fake_mnist.prepare(str(tmp_path_factory.mktemp('fake_mnist')), num_train=256)


def _benchmark(devices: int, data_dir: str, *extra: str) -> dict:
  env = dict(os.environ, TFDS_DATA_DIR=data_dir,
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  env.pop('LGAE_TUNE_MALLOC', None)
  run = subprocess.run(
      [sys.executable, '-m', 'experiments.benchmark', '--config=configs/mnist.py:smoke',
       '--num_steps=2', '--repeats=1', *extra], cwd=REPO, env=env, capture_output=True,
      text=True, timeout=300, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  return json.loads(run.stdout.strip().splitlines()[-1])


def test_benchmark_prints_one_json_line_with_all_fields(fake_data_dir):
  one = _benchmark(1, fake_data_dir, '--input_batches=5')
  assert KEYS <= set(one)
  assert one['config'] == 'mnist' and one['devices'] == 1 and one['batch_size'] == 16
  assert one['ms_per_step'] > 0 and one['compile_s'] > 0 and one['input_images_per_sec'] > 0
  assert one['images_per_sec'] == pytest.approx(16 / (one['ms_per_step'] / 1e3))
  assert one['malloc_tuned'] is sys.platform.startswith('linux')
  assert 3 <= one['warmup_steps'] <= 20
  # FLOPs count the whole step whatever the device count (XLA's cost analysis
  # sees one device's share of the partitioned program), not a quarter of it.
  # Not exactly equal: every device repeats the replicated optimizer updates,
  # which in this tiny config are ~5 % of the step.
  four = _benchmark(4, fake_data_dir, '--input_batches=0')
  assert four['devices'] == 4 and four['input_images_per_sec'] is None
  assert four['gflops_per_step'] == pytest.approx(one['gflops_per_step'], rel=0.1)


@pytest.mark.parametrize('args, expected', [
    (['--config=configs/mnist.py:smoke', '--num_steps=-1'], 'error: --num_steps=-1 must be >= 1.'),
    (['--config=configs/mnist.py:smoke', '--num_steps=0'], 'error: --num_steps=0 must be >= 1.'),
    (['--config=configs/mnist.py:smoke', '--repeats=0'], 'error: --repeats=0 must be >= 1.'),
    (['--config=configs/nope.py'], 'error: cannot load --config=configs/nope.py'),
    (['--config=configs/mnist.py:smoke', '--config.batch_size=6'],
     'config.batch_size=6 does not divide over the 4 devices'),
    (['--config=configs/mnist.py:smoke', '--config.optimizer.learning_rate=inf'],
     'config.optimizer.learning_rate=inf must be a finite number.'),
    (['--config=configs/mnist.py:smoke', '--config.batch_sizee=6'],
     "the config has no field 'batch_sizee'"),
])
def test_bad_input_is_one_line_before_anything_compiles(args, expected):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4')
  run = subprocess.run([sys.executable, '-m', 'experiments.benchmark', *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300, check=False)
  assert run.returncode == 1, run.stderr[-3000:]
  assert 'Traceback' not in run.stderr, run.stderr[-3000:]
  assert expected in run.stderr and not run.stdout.strip(), run.stderr[-3000:]
