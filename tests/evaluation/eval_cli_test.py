"""experiments.evaluate / experiments.traverse as subprocesses, on a tiny on-disk MNIST.

The subprocesses cannot use tfds' mock_data, so a 256 + 40 image MNIST is
prepared on disk (`tests.fake_mnist`). They inherit conftest's environment (4
CPU devices, the XLA compilation cache). The commands of one test run
concurrently, to keep the wall time down.
"""

import errno
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax.numpy as jnp
import pytest

from configs import mnist
from lgae.core import checkpointing, parallel
from lgae.evaluation import run as evaluation
from lgae.core import state as state_lib
from tests import fake_mnist

REPO = pathlib.Path(__file__).resolve().parents[2]
NUM_TRAIN, NUM_TEST = 256, 40
STEP = 3


def _snapshot(directory):
  """{relative path: sha256} of every file and {relative path: None} of every dir."""
  tree = {}
  for root, dirs, files in os.walk(directory):
    for name in dirs:
      tree[os.path.relpath(os.path.join(root, name), directory)] = None
    for name in files:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        tree[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
  return tree


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp('cli')
  data_dir = fake_mnist.prepare(str(root), NUM_TRAIN, NUM_TEST)
  env = dict(os.environ, TFDS_DATA_DIR=data_dir, PYTHONPATH=str(REPO))

  config = mnist.get_config('smoke')
  # Not a multiple of the 4 devices: the CLI must adjust it, not fail.
  config.eval_batch_size = 30
  state = state_lib.create_state(config, parallel.make_mesh())
  state = state.replace(step=jnp.asarray(STEP, jnp.int32))
  workdir = root / 'run'
  writer = checkpointing.Checkpointer(str(workdir))
  writer.save(STEP, state, config)
  writer.close()
  return root, env, workdir


def _start(env, module, *args):
  return subprocess.Popen([sys.executable, '-m', module, *args], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process):
  stdout, stderr = process.communicate(timeout=600)
  return process.returncode, stdout, stderr


def test_evaluate_and_traverse(setup):
  root, env, workdir = setup
  before = _snapshot(workdir)
  out = root / 'figures'
  evaluate = _start(env, 'experiments.evaluate', f'--workdir={workdir}')
  traverse = _start(env, 'experiments.traverse', f'--workdir={workdir}', f'--out={out}',
                    f'--step={STEP}', '--seed=1')
  code, _, stderr = _finish(evaluate)
  assert code == 0, stderr[-3000:]
  code, stdout, stderr = _finish(traverse)
  assert code == 0, stderr[-3000:]

  with open(workdir / 'eval.json') as f:
    scores = json.load(f)
  assert tuple(scores) == evaluation.CHECKPOINT_METRIC_KEYS
  assert scores['step'] == STEP
  for key in evaluation.CHECKPOINT_METRIC_KEYS:
    if key in evaluation.DISENTANGLEMENT_KEYS:
      assert scores[key] is None, key   # MNIST has no ground-truth factors.
    else:
      assert isinstance(scores[key], (int, float)), key  # MNIST: every other score applies.
  # eval.json is the only change to the workdir (no temporary file left).
  after = _snapshot(workdir)
  assert set(after) - set(before) == {'eval.json'}
  assert {k: after[k] for k in before} == before
  # The classifier was trained and cached under the data dir.
  assert os.listdir(root / 'tfds' / 'lgae_classifiers')[0].startswith('mnist_')

  names = ['samples_by_category.png', 'traverse_u1.png', 'traverse_u2.png',
           'reconstructions.png', 'traverse_z.png']
  assert sorted(os.listdir(out)) == sorted(names)
  assert stdout.split() == [str(out / name) for name in names]


def _corrupt(workdir, copy):
  """A copy of `workdir` whose state arrays are garbage."""
  shutil.copytree(workdir, copy)
  for path in (copy / 'checkpoints' / str(STEP) / 'state').rglob('d/*'):
    path.write_bytes(b'\x00garbage' * 16)
  return copy


def test_unusable_workdirs_fail_cleanly(setup):
  root, env, workdir = setup
  empty = root / 'empty'
  empty.mkdir()
  corrupt = _corrupt(workdir, root / 'corrupt')
  unwritable = root / 'unwritable'   # eval.json is a directory: the scores cannot be written.
  shutil.copytree(workdir, unwritable)
  (unwritable / 'eval.json').unlink(missing_ok=True)   # (test_evaluate_and_traverse wrote one.)
  (unwritable / 'eval.json').mkdir()
  a_file = root / 'a_file.txt'
  a_file.write_text('not a directory')
  before = {d: _snapshot(d) for d in (empty, corrupt, unwritable)}
  out = root / 'no_figures'
  # (evaluation_test covers the other failures of the shared loader in-process.)
  runs = [
      _start(env, 'experiments.evaluate', f'--workdir={empty}'),
      _start(env, 'experiments.traverse', f'--workdir={corrupt}', f'--out={out}'),
      _start(env, 'experiments.evaluate', f'--workdir={unwritable}'),
      _start(env, 'experiments.traverse', f'--workdir={workdir}', f'--out={a_file}'),
      _start(env, 'experiments.traverse', f'--workdir={workdir}', f'--out={out}',
             '--seed=99999999999999999999'),
      _start(env, 'experiments.evaluate', f'--workdir={workdir}', 'stray_argument'),
  ]
  messages = []
  for run in runs:
    code, _, stderr = _finish(run)
    assert code == 1, stderr[-3000:]
    assert 'Traceback' not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1, stderr[-3000:]
    messages.append(errors[0])
  assert 'No checkpoints' in messages[0]
  assert 'damaged' in messages[1]
  assert 'cannot write' in messages[2] and 'nothing was evaluated' in messages[2]
  assert 'is a file' in messages[3]
  assert '--seed=99999999999999999999 must be in [0, 2**63)' in messages[4]
  assert "Unexpected arguments: ['stray_argument']" in messages[5]
  for directory, snapshot in before.items():
    assert _snapshot(directory) == snapshot, directory
  assert not out.exists()
  assert a_file.read_text() == 'not a directory'


def test_evaluate_checks_its_output_before_evaluating(setup, monkeypatch):
  from experiments import evaluate as evaluate_cli  # pylint: disable=g-import-not-at-top
  _, _, workdir = setup

  def evaluated(*args, **kwargs):
    raise AssertionError('evaluated before checking that the scores can be written')

  def read_only(*args, **kwargs):   # As a read-only workdir refuses a new file (root ignores modes).
    raise PermissionError(errno.EACCES, 'Permission denied', str(workdir))

  monkeypatch.setattr(evaluation, 'evaluate_checkpoint_metrics', evaluated)
  monkeypatch.setattr(evaluate_cli.tempfile, 'mkstemp', read_only)
  with pytest.raises(evaluate_cli.OutputNotWritableError, match='nothing was evaluated'):
    evaluate_cli.run(str(workdir), STEP)


def test_evaluate_prints_the_scores_when_writing_them_fails(setup, monkeypatch, capsys):
  from experiments import evaluate as evaluate_cli  # pylint: disable=g-import-not-at-top
  _, env, workdir = setup
  monkeypatch.setenv('TFDS_DATA_DIR', env['TFDS_DATA_DIR'])

  def disk_full(path, payload):
    raise OSError(errno.ENOSPC, 'No space left on device', path)

  monkeypatch.setattr(evaluate_cli, 'write_json_atomically', disk_full)
  with pytest.raises(evaluate_cli.OutputNotWritableError, match='printed above'):
    evaluate_cli.run(str(workdir), STEP)
  printed = json.loads(capsys.readouterr().out)
  assert tuple(printed) == evaluation.CHECKPOINT_METRIC_KEYS and printed['step'] == STEP


def test_evaluating_a_given_step_writes_its_own_file(setup, monkeypatch):
  from experiments import evaluate as evaluate_cli  # pylint: disable=g-import-not-at-top
  root, env, workdir = setup
  monkeypatch.setenv('TFDS_DATA_DIR', env['TFDS_DATA_DIR'])
  final = workdir / 'eval.json'
  before = final.read_bytes() if final.exists() else None
  scores = evaluate_cli.run(str(workdir), STEP)
  with open(workdir / f'eval_step{STEP}.json') as f:
    assert json.load(f) == json.loads(json.dumps(scores))
  # The run's final scores (if any) are untouched.
  assert (final.read_bytes() if final.exists() else None) == before
  del root
