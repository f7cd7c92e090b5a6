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
