"""Every method behind one interface: the real CLIs, 1-vs-4 devices, dispatch, refusals.

Each method's own losses and shapes are tested in its own file
(`infogan_test.py`, `aae_test.py`; the LatentGAN-AE's in `train_step_test.py`
and others); here the shared infrastructure is run on all of them.
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import (aae_mnist, beta_vae_dsprites, cg_aae_mnist, infogan_mnist, infovaegan_mnist,
                     latent_stats_vae_mnist, mnist, wae_dsprites)
from lgae import methods, train
from lgae.core import checkpointing, config_validation, parallel
from lgae.evaluation import run as evaluation
from lgae.methods.latentgan_ae import step as train_step
from lgae.core import method as method_lib
from lgae.core import state as state_lib
from tests import fake_mnist
from tests.core import parallel_test

REPO = pathlib.Path(__file__).resolve().parents[2]
# (config file, module, the figures `experiments.traverse` draws for it).
METHOD_CONFIGS = {
    # traverse_z: the methods that decode their representation (Method.decode_representation).
    'latentgan_ae': ('configs/mnist.py', mnist,
                     ['samples_by_category.png', 'traverse_u1.png', 'traverse_u2.png',
                      'reconstructions.png', 'traverse_z.png']),
    'infogan': ('configs/infogan_mnist.py', infogan_mnist,
                ['samples_by_category.png', 'traverse_u1.png', 'traverse_u2.png']),
    # The AAE has no U codes (its style is the noise block): no traversal figures.
    'aae': ('configs/aae_mnist.py', aae_mnist, ['samples_by_category.png', 'reconstructions.png']),
    # dSprites baselines (no Cat code: no samples by category; no U codes).
    'beta_vae': ('configs/beta_vae_dsprites.py', beta_vae_dsprites,
                 ['reconstructions.png', 'traverse_z.png']),
    'wae_mmd': ('configs/wae_dsprites.py', wae_dsprites,
                ['reconstructions.png', 'traverse_z.png']),
    # Cat(10) + 2 U codes, and G decodes E's inferred codes.
    'infovaegan': ('configs/infovaegan_mnist.py', infovaegan_mnist,
                   ['samples_by_category.png', 'traverse_u1.png', 'traverse_u2.png',
                    'reconstructions.png']),
    # Cat(10) = the digit whose latent statistics generate; no U codes.
    'latent_stats_vae': ('configs/latent_stats_vae_mnist.py', latent_stats_vae_mnist,
                         ['samples_by_category.png', 'reconstructions.png']),
    # Noise z + Cat(10) s through CG, no U codes: category rows and reconstructions.
    'cg_aae': ('configs/cg_aae_mnist.py', cg_aae_mnist,
               ['samples_by_category.png', 'reconstructions.png']),
}


def test_every_method_has_a_config_and_is_found_by_name_and_by_state():
  assert set(METHOD_CONFIGS) == set(methods.NAMES)
  mesh = parallel.make_mesh(jax.devices()[:1])
  for name, (_, module, _) in METHOD_CONFIGS.items():
    config = module.get_config('smoke')
    assert config.model_name == name
    config_validation.validate(config, num_devices=4, check_dataset=False)
    state = state_lib.create_state(config, mesh)
    assert methods.for_state(state) is methods.get(name) is methods.for_config(config)
    assert int(state.step) == 0


def test_optional_capabilities_match_what_each_method_implements():
  # A flag without its method (or a method without its flag) would silently
  # drop or break a figure / diagnostic.
  for name in methods.NAMES:
    method = type(methods.get(name))
    assert method.decodes_representation == (
        method.decode_representation is not method_lib.Method.decode_representation), name
    assert method.has_latent_generator == (
        method.generated_latents is not method_lib.Method.generated_latents), name


def test_a_field_of_another_methods_model_is_an_unknown_field():
  config = infogan_mnist.get_config('smoke')
  with config.unlocked():
    config.model.encoder_features = (8, 8)   # a LatentGAN-AE field
  with pytest.raises(config_validation.ConfigError,
                     match=r'config\.model\.encoder_features: unknown field'):
    config_validation.validate(config, check_dataset=False)


@pytest.mark.parametrize('name', ['infogan', 'aae', 'beta_vae', 'wae_mmd', 'latent_stats_vae',
                                  'infovaegan', 'cg_aae'])
def test_four_devices_match_one_device(name):
  """Same updates on 1 and 4 devices, to float round-off at each array's own scale.

  The tolerance is relative to each leaf's largest magnitude: reductions over
  the batch run in another order on 4 devices, and Adam turns a round-off
  difference in a near-zero gradient into a full-size (lr) difference of that
  element, while the dSprites baselines' summed losses make moments O(10-100).
  A real split bug (per-device BatchNorm statistics, a lost shard) moves whole
  arrays by far more than 1e-4 of their scale.
  """
  config = METHOD_CONFIGS[name][1].get_config('smoke')
  one, m1, _ = parallel_test._run(config, jax.devices()[:1], num_steps=3)
  four, m4, batch4 = parallel_test._run(config, jax.devices()[:4], num_steps=3)
  assert len(batch4['image'].addressable_shards) == 4
  assert parallel_test._paths(one) == parallel_test._paths(four) and set(m1) == set(m4)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(one), jax.tree.leaves(four)):
    scale = float(np.max(np.abs(a))) if np.size(a) else 0.0
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale + 1e-7,
                               err_msg=jax.tree_util.keystr(path))
  for k in m1:
    np.testing.assert_allclose(m1[k], m4[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_make_train_step_runs_the_configs_method():
  """The jitted step is the method's: its metrics are the method's own."""
  mesh = parallel.make_mesh(jax.devices()[:1])
  keys = {}
  for name in ('latentgan_ae', 'aae'):
    config = METHOD_CONFIGS[name][1].get_config('smoke')
    state = state_lib.create_state(config, mesh)
    images = np.zeros((config.batch_size, 32, 32, 1), np.float32)
    _, metrics = train.make_train_step(config, mesh)(
        state, parallel.shard_batch({'image': images}, mesh))
    keys[name] = set(metrics)
  assert 'recon_loss' in keys['latentgan_ae'] and 'mi_cat_loss' in keys['latentgan_ae']
  assert 'd_style_loss' in keys['aae'] and 'mi_cat_loss' not in keys['aae']


@pytest.fixture(scope='module')
def data_env(tmp_path_factory):
  root = tmp_path_factory.mktemp('methods_cli')
  data_dir = fake_mnist.prepare(str(root), 256, 40)
  return root, dict(os.environ, TFDS_DATA_DIR=data_dir, PYTHONPATH=str(REPO))


def _cli(env, module, *args):
  result = subprocess.run([sys.executable, '-m', module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, f'{module} {args}:\n{result.stderr[-3000:]}'
  return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize('name', ['infogan', 'aae'])
def test_main_evaluate_traverse_through_the_real_cli(name, data_env):
  """The acceptance commands of a new method, on a tiny on-disk MNIST."""
  root, env = data_env
  path, _, figures = METHOD_CONFIGS[name]
  workdir, out = root / name, root / f'{name}_figures'
  _cli(env, 'experiments.main', f'--config={path}:smoke', f'--workdir={workdir}')
  assert checkpointing.Checkpointer(str(workdir), read_only=True).all_steps()[-1] == 6
  _cli(env, 'experiments.evaluate', f'--workdir={workdir}')
  with open(workdir / 'eval.json') as f:
    scores = json.load(f)
  assert tuple(scores) == evaluation.CHECKPOINT_METRIC_KEYS and scores['step'] == 6
  for key in ('test_error_hungarian', 'test_error_majority', 'nmi', 'frechet_distance',
              'generated_label_accuracy', 'cluster_neighbour_agreement'):
    assert isinstance(scores[key], float), key
  decoder = methods.get(name).has_decoder
  assert isinstance(scores['recon_mse'], float) == decoder
  assert isinstance(scores['recon_frechet_distance'], float) == decoder
  stdout = _cli(env, 'experiments.traverse', f'--workdir={workdir}', f'--out={out}')
  assert sorted(os.listdir(out)) == sorted(figures)
  assert stdout.split() == [str(out / f) for f in figures]


def test_a_workdir_of_another_method_is_refused(tmp_path):
  mesh = parallel.make_mesh(jax.devices()[:1])
  config = infogan_mnist.get_config('smoke')
  writer = checkpointing.Checkpointer(str(tmp_path))
  writer.save(0, state_lib.create_state(config, mesh), config)
  writer.close()
  reader = checkpointing.Checkpointer(str(tmp_path), read_only=True)
  with pytest.raises(checkpointing.CheckpointError, match=r"config\.model_name=infogan"):
    checkpointing.check_resumable(reader.restore_config(), aae_mnist.get_config('smoke'))
  reader.close()


@pytest.fixture(scope='module')
def fake_data_dir(tmp_path_factory):
  return fake_mnist.prepare(str(tmp_path_factory.mktemp('fake_mnist_resume')))


@pytest.mark.parametrize('name', ['infogan', 'aae'])
def test_a_resumed_run_ends_where_a_straight_one_does(name, fake_data_dir, tmp_path, monkeypatch):
  """The loop's resume guarantee (resume_test) holds for every method's state."""
  from lgae import train  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('TFDS_DATA_DIR', fake_data_dir)
  config = METHOD_CONFIGS[name][1].get_config('smoke')
  with config.unlocked():
    config.update(dict(num_train_steps=5, checkpoint_every_steps=2, eval_every_steps=-1))
  straight = jax.device_get(train.train_and_evaluate(config, str(tmp_path / 'straight')))
  with config.unlocked():
    config.num_train_steps = 3     # stops at 3 (checkpointed), then resumes to 5.
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  with config.unlocked():
    config.num_train_steps = 5
  resumed = jax.device_get(train.train_and_evaluate(config, str(tmp_path / 'resumed')))
  assert int(resumed.step) == 5
  # The second call continued from step 3 (a fresh start would log steps 1-3 again).
  with open(tmp_path / 'resumed' / 'metrics.jsonl') as f:
    steps = [json.loads(line)['step'] for line in f]
  assert steps == sorted(set(steps)) and steps[-1] == 5
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(straight), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
