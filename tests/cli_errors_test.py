"""The training CLI refuses missing data and another config's workdir: exit 1, one error line, disk untouched."""

import os
import pathlib
import subprocess
import sys

import pytest

from configs import mnist
from lgae import train
from tests import fake_mnist

REPO = pathlib.Path(__file__).resolve().parents[1]


def _snapshot(root):
  """Every file under root with its size and modification time."""
  out = {}
  for dirpath, _, files in os.walk(root):
    for name in files:
      path = os.path.join(dirpath, name)
      st = os.stat(path)
      out[path] = (st.st_size, st.st_mtime_ns)
  return out


def _main(*args):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', 'experiments.main', *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


def _error_lines(result):
  return [line for line in result.stderr.splitlines() if line.startswith('error:')]


def test_missing_data_is_one_error_line_and_writes_nothing(tmp_path):
  empty = tmp_path / 'empty_tfds'
  empty.mkdir()
  workdir = tmp_path / 'run'
  result = _main(f'--config={REPO / "configs" / "mnist.py"}:smoke', f'--workdir={workdir}',
                 f'--config.dataset.data_dir={empty}', '--config.dataset.download=False')
  assert result.returncode == 1, result.stderr[-2000:]
  errors = _error_lines(result)
  assert len(errors) == 1 and 'not prepared' in errors[0], result.stderr[-2000:]
  # The message goes on to name the command that prepares the data.
  assert 'experiments.prepare_data' in result.stderr.split(errors[0], 1)[1]
  assert 'Traceback' not in result.stderr
  assert not workdir.exists() or not any(workdir.iterdir())


def test_another_configs_workdir_is_refused_and_left_as_it_was(tmp_path):
  data_dir = fake_mnist.prepare(str(tmp_path / 'fake'))
  config = mnist.get_config('smoke')
  with config.unlocked():
    config.dataset.data_dir = data_dir
    config.num_train_steps = 3
    config.eval_every_steps = -1
  workdir = tmp_path / 'run'
  train.train_and_evaluate(config, str(workdir))
  before = _snapshot(workdir)
  result = _main(f'--config={REPO / "configs" / "mnist.py"}:smoke', f'--workdir={workdir}',
                 f'--config.dataset.data_dir={data_dir}', '--config.model.latent_dim=32',
                 '--config.num_train_steps=6')
  assert result.returncode == 1, result.stderr[-2000:]
  errors = _error_lines(result)
  assert len(errors) == 1 and 'latent_dim' in errors[0], result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  assert _snapshot(workdir) == before


@pytest.mark.parametrize('config_arg, expected', [
    ('configs/mnist.py:bset', "Unknown MNIST config variant 'bset'"),
    ('configs/mnist.py:smoke:extra', "Unknown MNIST config variant 'smoke:extra'"),
    ('configs/common.py', 'has no get_config()'),
])
def test_a_config_file_that_cannot_give_a_config_is_one_line(config_arg, expected, tmp_path):
  workdir = tmp_path / 'run'
  result = _main(f'--config={config_arg}', f'--workdir={workdir}')
  assert result.returncode == 1, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  first = result.stderr.strip().splitlines()[0]
  assert first.startswith('FATAL Flags parsing error:') and expected in first, first
  assert not workdir.exists()


@pytest.mark.parametrize('args, expected', [
    (['--config.seed=99999999999999999999'], 'config.seed=99999999999999999999 must fit in 64 bits'),
    (['--config.loss.lambda_disc=inf'], 'config.loss.lambda_disc=inf must be a finite number.'),
    (['--coordinator_address=notanaddress', '--num_processes=2', '--process_id=0'],
     "--coordinator_address='notanaddress': give HOST:PORT"),
])
def test_out_of_range_numbers_and_addresses_are_one_line(args, expected, tmp_path):
  workdir = tmp_path / 'run'
  result = _main(f'--config={REPO / "configs" / "mnist.py"}:smoke', f'--workdir={workdir}', *args)
  assert result.returncode == 1, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  errors = _error_lines(result)
  assert errors and expected in result.stderr, result.stderr[-2000:]
  assert not workdir.exists()
