"""Smoke tests of the benchmark commands (their figures are measurements, not tested values)."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import pytest

from lgae import benchmark, methods
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


# Runs `python -m <module> <args>` as on a machine without TensorFlow: a None
# in sys.modules makes `import tensorflow` (or tensorflow_datasets) raise
# ModuleNotFoundError and importlib.util.find_spec (etils' probe, behind JAX's
# compilation cache) return None, as if it were not installed. Every `import`
# of them tried is listed on stderr's last line at exit, so that one a library
# swallowed is seen too.
_WITHOUT_TENSORFLOW = """
import atexit, builtins, runpy, sys
BLOCKED = ('tensorflow', 'tensorflow_datasets')
for name in BLOCKED:
  sys.modules[name] = None
tried, import_ = [], builtins.__import__
def recording_import(name, *args, **kwargs):
  if name.split('.')[0] in BLOCKED:
    tried.append(name)
  return import_(name, *args, **kwargs)
builtins.__import__ = recording_import
atexit.register(lambda: print(f'tensorflow imports tried: {tried}', file=sys.stderr, flush=True))
module, *args = sys.argv[1:]
sys.argv = [module, *args]
runpy.run_module(module, run_name='__main__', alter_sys=True)
"""


def _run_without_tensorflow(module: str, *args: str, devices: int = 1,
                            timeout: int = 300) -> subprocess.CompletedProcess:
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  run = subprocess.run([sys.executable, '-c', _WITHOUT_TENSORFLOW, module, *args], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=timeout, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  assert run.stderr.strip().splitlines()[-1] == 'tensorflow imports tried: []', run.stderr[-3000:]
  return run


def test_the_step_benchmark_runs_without_tensorflow():
  run = _run_without_tensorflow(
      'experiments.benchmark', '--config=configs/mnist.py:smoke', '--input_batches=0',
      '--num_steps=1', '--repeats=1', '--max_warmup=0')
  result = json.loads(run.stdout.strip().splitlines()[-1])
  assert result['ms_per_step'] > 0 and result['input_images_per_sec'] is None


# The accelerator benchmark's entries: the LatentGAN-AE configs in both explicit
# decoder orders, then one config per baseline method.
_LGAE_ENTRIES = {f'{config}/{order}': config for config in ('mnist', 'chairs', 'celeba')
                 for order in ('project_first', 'upsample_first')}
_BASELINE_ENTRIES = {'infogan_mnist': 'infogan', 'aae_mnist': 'aae', 'cg_aae_mnist': 'cg_aae',
                     'infovaegan_mnist': 'infovaegan', 'beta_vae_dsprites': 'beta_vae',
                     'wae_dsprites': 'wae_mmd', 'latent_stats_vae_mnist': 'latent_stats_vae'}
_ENTRY_FIGURES = ('ms_per_step', 'gflops_per_step', 'achieved_gflops', 'compile_s', 'wall_s')


def test_the_accelerator_benchmark_lists_every_config_at_its_batch_size():
  run = subprocess.run([sys.executable, '-m', 'experiments.accelerator_benchmark', '--list'],
                       cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  rows = [line.split('\t') for line in run.stdout.strip().splitlines()]
  assert [row[0] for row in rows] == [*_LGAE_ENTRIES, *_BASELINE_ENTRIES]
  by_name = {row[0]: row[1:] for row in rows}
  for name, config in _LGAE_ENTRIES.items():
    assert by_name[name] == [f'configs/{config}.py:paper', 'latentgan_ae', 'batch 128',
                             name.split('/')[1]], by_name[name]
  for name, method in _BASELINE_ENTRIES.items():
    assert by_name[name][:2] == [f'configs/{name}.py', method], by_name[name]
  assert by_name['aae_mnist'][2] == 'batch 100' and by_name['cg_aae_mnist'][2] == 'batch 64'
  # Every method of lgae is timed: a new one needs a line in the script's table.
  assert {row[2] for row in rows} == set(methods.NAMES)


@pytest.mark.slow
def test_the_accelerator_benchmark_smoke_times_every_entry_without_tensorflow(tmp_path):
  out = tmp_path / 'accel.json'
  run = _run_without_tensorflow('experiments.accelerator_benchmark', '--smoke', f'--out={out}',
                                timeout=900)
  assert '13 entries timed, 0 failed, 0 skipped' in run.stdout, run.stdout
  assert os.listdir(tmp_path) == ['accel.json']   # written by renaming: no temporary left.
  result = json.loads(out.read_text())
  assert result['complete'] is True and result['smoke'] is True
  assert result['platform'] == 'cpu' and result['device_kind'] == 'cpu'
  assert result['device_count'] == 1 and result['jax_version'] == jax.__version__
  assert result['total_wall_s'] > 0 and result['auto_decoder_upsample_conv'] == 'project_first'
  entries = {entry['name']: entry for entry in result['entries']}
  assert list(entries) == [*_LGAE_ENTRIES, *_BASELINE_ENTRIES]
  peak = result['matmul_peak']
  assert peak['size'] == 256 and peak['gflops'] > 0
  for name, entry in entries.items():
    assert entry['status'] == 'ok', entry
    assert entry['batch_size'] == 16 and entry['devices'] == 1, entry
    assert entry['fraction_of_matmul_peak'] == pytest.approx(
        entry['achieved_gflops'] / peak['gflops']), entry
    assert entry['config'] == f'configs/{name.split("/")[0]}.py:smoke', entry
    assert all(entry[figure] > 0 for figure in _ENTRY_FIGURES), entry
  for name in _LGAE_ENTRIES:
    assert entries[name]['method'] == 'latentgan_ae'
    assert entries[name]['decoder_upsample_conv'] == name.split('/')[1]
  for name, method in _BASELINE_ENTRIES.items():
    assert entries[name]['method'] == method
  faster = result['faster_decoder_upsample_conv']
  assert set(faster) == {'mnist', 'chairs', 'celeba'}
  assert all(f['order'] in ('project_first', 'upsample_first') and f['speedup'] >= 1
             for f in faster.values()), faster


def _accelerator_benchmark(*args: str, devices: int = 1) -> subprocess.CompletedProcess:
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  return subprocess.run([sys.executable, '-m', 'experiments.accelerator_benchmark', *args],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                        check=False)


def test_the_accelerator_benchmark_records_failed_entries_and_goes_on(tmp_path):
  out = tmp_path / 'accel.json'
  # Batch 16 does not divide over 3 devices: each entry fails its config check.
  run = _accelerator_benchmark('--smoke', f'--out={out}', '--only=mnist/upsample_first,aae_mnist',
                               devices=3)
  assert run.returncode == 0, run.stderr[-3000:]
  result = json.loads(out.read_text())
  assert result['complete'] is True and result['device_count'] == 3
  assert os.listdir(tmp_path) == ['accel.json']
  assert [e['name'] for e in result['entries']] == ['mnist/upsample_first', 'aae_mnist']
  for entry in result['entries']:
    assert entry['status'] == 'error', entry
    assert entry['error'].startswith('ConfigError: Invalid config: config.batch_size=16 does not '
                                     'divide over the 3 devices'), entry


def test_the_accelerator_benchmark_skips_what_would_pass_its_budget(tmp_path):
  out = tmp_path / 'accel.json'
  run = _accelerator_benchmark('--smoke', f'--out={out}', '--budget_s=0.001')
  assert run.returncode == 0, run.stderr[-3000:]
  result = json.loads(out.read_text())
  assert result['complete'] is True and len(result['entries']) == 13
  for entry in result['entries']:
    assert entry['status'] == 'skipped' and entry['reason'].startswith('time budget: '), entry


@pytest.mark.parametrize('args, expected', [
    ([], 'error: --out is required'),
    (['--out={tmp}'], 'is a directory'),
    (['--out={tmp}/no/such/dir/accel.json'], 'does not exist'),
    (['--out={tmp}/accel.json', '--budget_s=0'], 'error: --budget_s=0.0 must be'),
    (['--out={tmp}/accel.json', '--only=mnist'], 'error: --only: no entry named mnist;'),
    (['--out={tmp}/accel.json', 'extra'], 'error: unexpected arguments: extra'),
])
def test_the_accelerator_benchmark_refuses_bad_flags_in_one_line(tmp_path, args, expected):
  run = _accelerator_benchmark(*[a.format(tmp=tmp_path) for a in args])
  assert run.returncode == 1, run.stderr[-3000:]
  lines = run.stderr.strip().splitlines()
  assert 'Traceback' not in run.stderr and lines[-1].startswith('error: '), run.stderr[-3000:]
  assert expected in lines[-1] and not run.stdout.strip(), run.stderr[-3000:]
  assert not list(tmp_path.rglob('*.json'))


def test_run_within_budget_records_failures_and_skips_past_the_budget():
  now = [0.0]

  def takes(seconds, error=None):
    def measure():
      now[0] += seconds
      if error:
        raise error
      return {'ms_per_step': seconds}
    return measure

  seen = []
  entries = [({'name': 'a'}, takes(10)),
             ({'name': 'oom'}, takes(2, RuntimeError('RESOURCE_EXHAUSTED: Out of memory\nmore'))),
             ({'name': 'b'}, takes(5)),
             ({'name': 'c'}, takes(1)),
             ({'name': 'd'}, takes(1))]
  records = benchmark.run_within_budget(entries, budget_s=26, clock=lambda: now[0],
                                        on_record=lambda r: seen.append(len(r)))
  assert [r['status'] for r in records] == ['ok', 'error', 'ok', 'skipped', 'skipped']
  assert records[0] == {'name': 'a', 'status': 'ok', 'ms_per_step': 10, 'wall_s': 10}
  assert records[1]['error'] == 'RuntimeError: RESOURCE_EXHAUSTED: Out of memory more'
  # After 17 s, the longest entry (10 s) would pass 26 s: 'c' and all after it are skipped.
  assert records[3]['reason'] == ('time budget: 17.0 s of 26 s used, and the longest entry so '
                                  'far took 10.0 s')
  assert records[4]['reason'] == records[3]['reason'] and 'wall_s' not in records[3]
  assert seen == [1, 2, 3, 4, 5]


def test_matmul_peak_is_the_flops_of_one_matmul_over_its_time():
  peak = benchmark.matmul_peak(128, num_calls=2, repeats=2)
  assert peak['size'] == 128 and peak['ms_per_call'] > 0
  assert peak['gflops'] == pytest.approx(2 * 128 ** 3 / (peak['ms_per_call'] / 1e3) / 1e9)
