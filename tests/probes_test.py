"""The research probes of experiments/probes/ run: a smoke run each, and bad input is one line.

Each probe runs as its users run it (`python -m experiments.probes.<name>`,
in a subprocess) on tiny inputs: the checkpoint readers on smoke checkpoints,
the .npz readers on a synthetic .npz of well-separated clusters. The
checkpoints are the committed smoke fixtures of tests/fixtures/checkpoints/
where present (a LatentGAN-AE two-stage run on fake MNIST, an InfoVAEGAN
dSprites run), else trained here for 3 steps; either way they are copied into
a temporary workdir that the module's tests share.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from configs import infovaegan_mnist, mnist
from experiments.probes import _cli
from lgae import train
from lgae.evaluation import metrics
from lgae.evaluation import run as evaluation
from lgae.methods.latentgan_ae import latent_cache
from tests import fake_mnist

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = REPO / 'tests' / 'fixtures' / 'checkpoints'
NUM_TRAIN, NUM_TEST = 256, 40   # The fake MNIST of the fixtures' case.json.
NUM_CLUSTERS = 10


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  return tmp_path_factory.mktemp('probes')


@pytest.fixture(scope='module')
def env(root):
  """The subprocesses' environment: fake MNIST as $TFDS_DATA_DIR (the fixtures keep data_dir '')."""
  data_dir = fake_mnist.prepare(str(root / 'fake_mnist'), NUM_TRAIN, NUM_TEST)
  return dict(os.environ, TFDS_DATA_DIR=data_dir, PYTHONPATH=str(REPO))


def _workdir(root, env, fixture, config_module, variant):
  """A workdir holding a smoke checkpoint: the fixture's copied, else 3 steps trained here."""
  workdir = root / fixture
  if (FIXTURES / fixture / 'checkpoints').is_dir():
    shutil.copytree(FIXTURES / fixture / 'checkpoints', workdir / 'checkpoints')
    return workdir
  config = config_module.get_config(variant)
  with config.unlocked():
    config.dataset.data_dir = env['TFDS_DATA_DIR']
    config.num_train_steps = 3
    config.checkpoint_every_steps = 3
    config.eval_every_steps = -1
  train.train_and_evaluate(config, str(workdir))
  return workdir


@pytest.fixture(scope='module')
def latentgan_workdir(root, env):
  return _workdir(root, env, 'mnist_two_stage', mnist, 'smoke')


@pytest.fixture(scope='module')
def image_gan_workdir(root, env):
  # The dSprites fixture needs no data (the probe only runs G); trained here: fake MNIST.
  fixture = ('infovaegan_dsprites' if (FIXTURES / 'infovaegan_dsprites' / 'checkpoints').is_dir()
             else 'infovaegan_mnist')
  return _workdir(root, env, fixture, infovaegan_mnist, 'smoke')


@pytest.fixture(scope='module')
def latents(root):
  """A dump_latents-style .npz: 300 points of 10 well-separated Gaussian clusters in 8-d."""
  rng = np.random.default_rng(0)
  labels = rng.integers(0, NUM_CLUSTERS, 300).astype(np.int32)
  centres = rng.normal(0.0, 6.0, (NUM_CLUSTERS, 8))
  points = (centres[labels] + rng.normal(0.0, 1.0, (300, 8))).astype(np.float32)
  path = root / 'latents.npz'
  np.savez(path, ztr=points, ytr=labels, zte=points[:50], yte=labels[:50])
  return path


def _probe(env, name, *args):
  return subprocess.run([sys.executable, '-m', f'experiments.probes.{name}', *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=300, check=False)


def _ok(result):
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def _assert_one_error_line(result, *fragments):
  assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-3000:])
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1, result.stderr[-3000:]
  for fragment in fragments:
    assert fragment in errors[0], errors[0]


# --- The checkpoint readers ------------------------------------------------------------


@pytest.mark.slow
def test_dump_latents_writes_both_splits(latentgan_workdir, env, root):
  out = root / 'dumped.npz'
  stdout = _ok(_probe(env, 'dump_latents', f'--workdir={latentgan_workdir}', f'--out={out}'))
  with np.load(out) as d:
    assert sorted(d.files) == ['yte', 'ytr', 'zte', 'ztr']
    ztr, ytr, zte, yte = d['ztr'], d['ytr'], d['zte'], d['yte']
  assert ztr.ndim == 2 and ztr.shape[0] == NUM_TRAIN and zte.shape == (NUM_TEST, ztr.shape[1])
  assert ytr.shape == (NUM_TRAIN,) and yte.shape == (NUM_TEST,)
  assert np.all(np.isfinite(ztr)) and np.all(np.isfinite(zte))
  assert set(np.unique(ytr)) <= set(range(10)) and set(np.unique(yte)) <= set(range(10))
  assert stdout.strip() == f'{ztr.shape} {zte.shape}'


@pytest.mark.slow
def test_dump_latents_refuses_a_directory_without_a_checkpoint(env, tmp_path):
  out = tmp_path / 'never.npz'
  result = _probe(env, 'dump_latents', f'--workdir={tmp_path}', f'--out={out}')
  _assert_one_error_line(result, 'No checkpoints')
  assert not out.exists()


@pytest.mark.slow
def test_neighbour_probe_prints_an_error_per_epoch(latentgan_workdir, env):
  stdout = _ok(_probe(env, 'neighbour_probe', f'--workdir={latentgan_workdir}', '--epochs=2',
                      '--num_neighbours=4'))
  lines = stdout.strip().splitlines()
  assert len(lines) == 2, stdout
  for epoch, line in enumerate(lines, start=1):
    match = re.fullmatch(rf'epoch {epoch}: loss (\S+) train error \(Hungarian\) (\S+) % '
                         r'clusters (\d+) \(\d+ s\)', line)
    assert match, line
    assert np.isfinite(float(match[1])) and 0.0 <= float(match[2]) <= 100.0
    assert 1 <= int(match[3]) <= NUM_CLUSTERS


@pytest.mark.slow
def test_neighbour_probe_refuses_a_run_of_another_method(image_gan_workdir, env):
  result = _probe(env, 'neighbour_probe', f'--workdir={image_gan_workdir}')
  _assert_one_error_line(result, 'holds a run of infovaegan', 'latentgan_ae')


@pytest.mark.slow
def test_generator_pixel_correlation_prints_the_three_numbers(image_gan_workdir, env):
  stdout = _ok(_probe(env, 'generator_pixel_correlation', f'--workdir={image_gan_workdir}'))
  match = re.fullmatch(rf'{re.escape(str(image_gan_workdir))} step (\d+): neighbour corr (\S+), '
                       r'mean (\S+), frac>0 (\S+)', stdout.strip())
  assert match, stdout
  assert int(match[1]) == 3   # The latest checkpoint's step (fixture or trained here).
  assert -1.0 <= float(match[2]) <= 1.0
  assert np.isfinite(float(match[3]))
  assert 0.0 <= float(match[4]) <= 1.0


@pytest.mark.slow
def test_generator_pixel_correlation_refuses_a_generator_of_latents(latentgan_workdir, env):
  result = _probe(env, 'generator_pixel_correlation', f'--workdir={latentgan_workdir}')
  _assert_one_error_line(result, 'holds a run of latentgan_ae', 'infogan or infovaegan')


# --- The .npz readers ------------------------------------------------------------------


@pytest.mark.slow   # UMAP's numba compilation: ~20 s.
def test_umap_ceiling_clusters_separated_clusters(latents, env):
  lines = _ok(_probe(env, 'umap_ceiling', f'--latents={latents}')).strip().splitlines()
  path, method, error, seconds = lines[0].split()
  assert (path, method) == (str(latents), 'UMAP+GMM') and re.fullmatch(r'\d+s', seconds)
  assert 0.0 <= float(error) <= 5.0, lines[0]   # 10 clusters 6 sigma apart: (nearly) all found.
  confusion = np.array([[int(v) for v in line.strip(' []').split()] for line in lines[1:]])
  assert confusion.shape == (NUM_CLUSTERS, NUM_CLUSTERS) and confusion.sum() == 300


def test_graph_ceiling_prints_agreements_and_spectral_errors(latents, env):
  lines = _ok(_probe(env, 'graph_ceiling', f'--latents={latents}')).strip().splitlines()
  assert len(lines) == 6, lines
  for line, name in zip(lines[:3], ('euclid', 'std', 'cosine')):
    match = re.fullmatch(rf'{name}: 10-NN agree (\S+) 20-NN (\S+)', line)
    assert match and all(0.9 <= float(v) <= 1.0 for v in match.groups()), line
  for line, name in zip(lines[3:], ('knn', 'umap_fuzzy', 'mutual')):
    match = re.fullmatch(rf'spectral\({name}\) Hungarian (\S+) % \(\d+s\)', line)
    assert match and 0.0 <= float(match[1]) <= 5.0, line


def test_umap_ceiling_refuses_a_missing_file(env, tmp_path):
  result = _probe(env, 'umap_ceiling', f'--latents={tmp_path / "missing.npz"}')
  _assert_one_error_line(result, 'missing.npz is not a file')


def test_graph_ceiling_refuses_a_file_that_is_not_an_npz(env, tmp_path):
  path = tmp_path / 'notes.txt'
  path.write_text('not latents\n')
  result = _probe(env, 'graph_ceiling', f'--latents={path}')
  _assert_one_error_line(result, 'notes.txt is not an .npz')


@pytest.mark.parametrize('arrays, fragment', [
    (None, 'is not a file'),
    ('text', 'is not an .npz'),
    ({'ztr': np.zeros((30, 2))}, 'has no ytr'),
    ({'ztr': np.zeros((30, 2)), 'ytr': np.zeros(29)}, 'ztr must be [N, d] and ytr [N]'),
    ({'ztr': np.zeros((20, 2)), 'ytr': np.zeros(20)}, 'has 20 latents; this probe needs at least 21'),
])
def test_load_latents_says_what_is_wrong(arrays, fragment, tmp_path):
  path = tmp_path / 'latents.npz'
  if arrays == 'text':
    path.write_text('not latents\n')
  elif arrays is not None:
    np.savez(path, **arrays)
  with pytest.raises(_cli.InputError, match=re.escape(fragment)):
    _cli.load_latents(str(path), min_points=21)


@pytest.mark.slow
def test_teacher_vs_q_pairs_the_kept_teacher_with_q(root, env, latentgan_workdir, monkeypatch):
  config = mnist.get_config('smoke')
  with config.unlocked():
    config.dataset.data_dir = env['TFDS_DATA_DIR']
    config.schedule = 'two_stage'
    config.two_stage.autoencoder_steps = 3
    config.two_stage.num_neighbours = 4
    config.two_stage.teacher_dims = 2
    config.loss.neighbour_weight = 1.0
    config.loss.teacher_weight = 1.0
    config.num_train_steps = 6
    config.eval_every_steps = -1
  workdir = root / 'teacher_run'
  train.train_and_evaluate(config, str(workdir))
  [kept] = list((workdir / train.PHASE_CACHE / 'latent_gan').glob('teacher_*.npy'))
  scores = json.loads(_ok(_probe(env, 'teacher_vs_q', f'--workdir={workdir}', '--test')))
  # The kept labels, scored independently against the train labels in stored order.
  monkeypatch.setenv('TFDS_DATA_DIR', env['TFDS_DATA_DIR'])
  state, saved, mesh = evaluation.load_checkpoint(str(workdir))
  _, labels = latent_cache.encode_split(state, saved, mesh, saved.dataset.train_split)
  expected = metrics.clustering_scores(labels, np.load(kept))['test_error_hungarian']
  assert scores['teacher_train_error'] == pytest.approx(expected)
  for key in ('q_train_error', 'q_test_error', 'teacher_test_error', 'q_agrees_with_teacher_train'):
    assert 0.0 <= scores[key] <= 100.0, key
  assert scores['step'] == 6 and scores['seed'] == config.seed
  # A run without a teacher is refused in one line.
  _assert_one_error_line(_probe(env, 'teacher_vs_q', f'--workdir={latentgan_workdir}'),
                         'with a teacher')


@pytest.mark.parametrize('args, expected', [
    (['--epochs=-1'], '--epochs=-1 must be >= 1'),
    (['--learning_rate=nan'], '--learning_rate=nan must be a finite number > 0'),
    (['--b1=2'], '--b1=2.0 must be in [0, 1)'),
])
def test_neighbour_probe_refuses_settings_that_cannot_train(args, expected, env, tmp_path):
  _assert_one_error_line(_probe(env, 'neighbour_probe', f'--workdir={tmp_path}', *args), expected)


def test_dump_latents_refuses_an_out_under_a_file(env, tmp_path):
  (tmp_path / 'a_file').write_text('a file')
  result = _probe(env, 'dump_latents', f'--workdir={tmp_path}', f'--out={tmp_path / "a_file" / "l.npz"}')
  _assert_one_error_line(result, 'is a file, not a directory')
  assert (tmp_path / 'a_file').read_text() == 'a file'
