"""Tests of the VAE / MMD-VAE with the latent-statistics generator (`methods.latent_stats_vae`)."""

import functools
import itertools
import json
import math
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import latent_stats_vae_mnist
from lgae.core import checkpointing, config_validation, latent, parallel
from lgae.evaluation import metrics, run as evaluation
from lgae.core import state as state_lib
from lgae.methods import latent_stats_vae as lsv
from lgae.objectives import mmd
from lgae import train
from tests import fake_mnist
from tests.core import parallel_test

REPO = pathlib.Path(__file__).resolve().parents[2]
METHOD = lsv.LatentStatsVAE()


def _messages(config):
  errors = []
  need = lambda ok, message: ok or errors.append(message)
  METHOD.validate(config, need)
  METHOD.validate_dataset(config, need)   # (run by config_validation when it checks the dataset)
  return errors


def _abstract_params(config):
  init = functools.partial(METHOD.init_state, config=config, models=METHOD.build_models(config))
  return jax.eval_shape(init, jax.random.PRNGKey(0)).ae.params   # allocates nothing.


_STATES, _STEPS = {}, {}


def _state(variant):
  if variant not in _STATES:
    config = latent_stats_vae_mnist.get_config(variant)
    init = functools.partial(METHOD.init_state, config=config, models=METHOD.build_models(config))
    _STATES[variant] = (config, jax.jit(init)(jax.random.PRNGKey(0)))
  return _STATES[variant]


def _step(variant):
  if variant not in _STEPS:
    config, _ = _state(variant)
    _STEPS[variant] = jax.jit(functools.partial(METHOD.train_step, config=config))
  return _STEPS[variant]


def _batch(n=16, seed=0, num_classes=10):
  rng = np.random.default_rng(seed)
  images = np.where(rng.uniform(size=(n, 32, 32, 1)) > 0.7, 1.0, -1.0).astype(np.float32)
  return {'image': jnp.asarray(images),
          'label': jnp.asarray(rng.integers(0, num_classes, n), jnp.int32)}


# --- (a) Shapes, parameter counts, configs -----------------------------------------


def test_paper_tables_shapes_and_parameter_counts():
  """Tables 1-2 at d = 20: on 28x28 (784) inputs exactly the paper's layers."""
  config = latent_stats_vae_mnist.get_config('kl')
  with config.unlocked():
    config.dataset.image_size = 28   # the paper's 784 inputs (lgae's runs pad to 32).
  params = jax.tree.map(lambda a: a.shape, _abstract_params(config))
  assert params['encoder'] == {'fc0': {'kernel': (784, 500), 'bias': (500,)},
                               'fc1': {'kernel': (500, 500), 'bias': (500,)},
                               'fc_out': {'kernel': (500, 40), 'bias': (40,)}}
  assert params['decoder'] == {'fc0': {'kernel': (20, 500), 'bias': (500,)},
                               'fc1': {'kernel': (500, 500), 'bias': (500,)},
                               'fc_out': {'kernel': (500, 784), 'bias': (784,)}}
  abstract = _abstract_params(config)
  # 784*500+500 + 500*500+500 + 500*40+40; 20*500+500 + 500*500+500 + 500*784+784.
  assert state_lib.count_params(abstract['encoder']) == 663_040
  assert state_lib.count_params(abstract['decoder']) == 653_784
  # lgae's padded 32x32 MNIST: 1024 inputs and outputs (the config docstring's counts).
  padded = _abstract_params(latent_stats_vae_mnist.get_config('kl'))
  assert state_lib.count_params(padded['encoder']) == 783_040
  assert state_lib.count_params(padded['decoder']) == 774_024


@pytest.mark.parametrize('variant,divergence,d,theta,n', [
    ('kl', 'kl', 20, 0.4, 2), ('mmd', 'mmd', 20, 0.6, 3), ('kl_d2', 'kl', 2, 0.4, 2),
    ('mmd_d10', 'mmd', 10, 0.6, 3)])
def test_variants_are_valid_and_have_the_papers_settings(variant, divergence, d, theta, n):
  config = latent_stats_vae_mnist.get_config(variant)
  config_validation.validate(config, num_devices=4, check_dataset=False)
  m = config.model
  assert (m.divergence, m.latent_dim, m.theta, m.num_draws) == (divergence, d, theta, n)
  assert tuple(m.encoder_hidden) == tuple(m.decoder_hidden) == (500, 500)
  assert config.optimizer.learning_rate == 1e-3
  layout = METHOD.code_layout(config)
  assert layout == latent.CodeLayout(noise_dim=n * d, categorical=(10,), num_continuous=0)
  assert tuple(jax.tree.map(lambda a: a.shape, _abstract_params(config))['encoder']['fc_out']
               ['kernel']) == (500, 2 * d)
  with pytest.raises(ValueError, match='Unknown latent-statistics'):
    latent_stats_vae_mnist.get_config('elbo')


def test_validation_refusals():
  config = latent_stats_vae_mnist.get_config('smoke')
  assert _messages(config) == []
  with config.unlocked():
    config.dataset.name = 'celeb_a'     # no ClassLabel 'label' (tfds builder code, offline).
  assert any('has no class labels' in e for e in _messages(config))
  config = latent_stats_vae_mnist.get_config('smoke')
  config.codes.categorical = (5,)
  config.codes.generator_input_dim = config.codes.noise_dim + 5
  assert any('mnist has 10 classes' in e for e in _messages(config))
  config = latent_stats_vae_mnist.get_config('smoke')
  config.model.num_draws = 3            # noise_dim must follow: 3 * 4.
  assert any('config.codes.noise_dim=8' in e for e in _messages(config))
  config = latent_stats_vae_mnist.get_config('smoke')
  config.model.divergence = 'js'
  config.model.stats_decay = 0.0
  config.codes.num_continuous = 1
  errors = _messages(config)
  for field in ('model.divergence', 'model.stats_decay', 'codes.num_continuous'):
    assert any(f'config.{field}' in e for e in errors), field


# --- (b) Losses and the class statistics ---------------------------------------------


def test_mmd_gaussian_double_loop():
  x = np.array([[0.0, 0.0], [1.0, 0.5], [-0.5, 2.0], [0.3, -1.0]])
  y = np.array([[1.0, 1.0], [0.0, -0.5], [2.0, 0.0]])
  c = 3.0
  k = lambda a, b: math.exp(-np.sum((a - b) ** 2) / c)
  n, m = len(x), len(y)
  kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  kxy = sum(k(a, b) for a, b in itertools.product(x, y)) / (n * m)
  got = mmd.mmd_gaussian(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), c)
  np.testing.assert_allclose(got, kxx + kyy - 2 * kxy, rtol=1e-5)
  assert mmd.gaussian_kernel_scale(20, 1.0) == 40.0


def test_mmd_gaussian_same_vs_shifted():
  kx, ky = jax.random.split(jax.random.PRNGKey(0))
  x, y = jax.random.normal(kx, (1000, 4)), jax.random.normal(ky, (1000, 4))
  scale = mmd.gaussian_kernel_scale(4, 1.0)
  same, shifted = float(mmd.mmd_gaussian(x, y, scale)), float(mmd.mmd_gaussian(x, y + 1.0, scale))
  assert abs(same) < 5e-3 and shifted > 0.1 and shifted > 50 * abs(same), (same, shifted)


def _by_hand(state, config, batch, divergence):
  """The step's loss from its pieces, in float64 numpy (eps, prior from fold_in(rng, step))."""
  d = config.model.latent_dim
  k_eps, k_prior = jax.random.split(jax.random.fold_in(state.rng, state.step))
  eps = jax.random.normal(k_eps, (16, d))
  prior = np.asarray(jax.random.normal(k_prior, (16, d)), np.float64)
  mean, log_var, z, pre = (np.asarray(a, np.float64) for a in state.ae.apply_fn(
      {'params': state.ae.params}, batch['image'], eps))
  np.testing.assert_allclose(z, mean + np.exp(log_var / 2) * np.asarray(eps), atol=1e-5)
  p = 1.0 / (1.0 + np.exp(-2.0 * pre))            # pixel probabilities: (tanh(a) + 1) / 2.
  t = (np.asarray(batch['image'], np.float64) + 1.0) / 2.0
  recon = np.mean(np.sum(-(t * np.log(p) + (1 - t) * np.log(1 - p)), axis=(1, 2, 3)))
  kl = np.mean(0.5 * np.sum(np.exp(log_var) + mean ** 2 - 1 - log_var, axis=1))
  c = 2.0 * d * config.model.mmd_kernel_scale
  k = lambda a, b: np.exp(-np.sum((a[:, None] - b[None]) ** 2, axis=-1) / c)
  mmd = ((k(z, z).sum() - 16) / 240 + (k(prior, prior).sum() - 16) / 240
         - 2 * k(z, prior).mean())
  total = recon + (kl if divergence == 'kl' else config.model.mmd_weight * mmd)
  return {'loss': total, 'recon_loss': recon, 'kl': kl, 'mmd': mmd}, mean


@pytest.mark.parametrize('variant,divergence', [('smoke', 'kl'), ('mmd_smoke', 'mmd')])
def test_step_loss_and_statistics_by_hand(variant, divergence):
  config, state = _state(variant)
  state = state.replace(step=jnp.asarray(3, jnp.int32))
  batch = _batch()
  new_state, metrics = _step(variant)(state, batch)
  expected, mean = _by_hand(state, config, batch, divergence)
  for key, value in expected.items():
    np.testing.assert_allclose(float(metrics[key]), value, rtol=2e-4, atol=1e-5, err_msg=key)
  # One update of the class statistics from zero: the batch's own per-class sums.
  labels = np.asarray(batch['label'])
  for y in range(10):
    rows = mean[labels == y]
    np.testing.assert_allclose(new_state.stats.count[y], len(rows))
    np.testing.assert_allclose(new_state.stats.total[y], rows.sum(axis=0), atol=1e-5)
    np.testing.assert_allclose(new_state.stats.total_sq[y], (rows ** 2).sum(axis=0), atol=1e-5)
  assert int(new_state.step) == 4


def test_class_statistics_hand_computed():
  z1 = jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])
  z2 = jnp.array([[2.0, 2.0]])
  stats = lsv.update_class_stats(lsv.ClassStats.zeros(3, 2), z1, jnp.array([0, 0, 1]), 0.5)
  stats = lsv.update_class_stats(stats, z2, jnp.array([0]), 0.5)
  # Class 0: weights 0.5, 0.5 (z1 rows, one step old) and 1 (z2).
  np.testing.assert_allclose(stats.count, [2.0, 0.5, 0.0])
  np.testing.assert_allclose(stats.total[0], [0.5 * 1 + 0.5 * 3 + 2, 0.5 * 2 + 0.5 * 4 + 2])
  np.testing.assert_allclose(stats.total_sq[0], [0.5 * 1 + 0.5 * 9 + 4, 0.5 * 4 + 0.5 * 16 + 4])
  mu, sigma = lsv.class_moments(stats)
  # Weighted mean (0.5*1 + 0.5*3 + 2) / 2 = 2 and (1 + 2 + 2) / 2 = 2.5; weighted variances
  # (0.5 + 4.5 + 4) / 2 - 4 = 0.5 and (2 + 8 + 4) / 2 - 6.25 = 0.75.
  np.testing.assert_allclose(mu[0], [2.0, 2.5], rtol=1e-6)
  np.testing.assert_allclose(sigma[0], np.sqrt([0.5, 0.75]), rtol=1e-5)
  np.testing.assert_allclose(mu[1], [5.0, 0.0])
  np.testing.assert_allclose(sigma[1], [0.0, 0.0], atol=1e-3)   # one encoding: no spread.
  np.testing.assert_allclose(mu[2], [0.0, 0.0])                 # unseen: the prior N(0, I).
  np.testing.assert_allclose(sigma[2], [1.0, 1.0])
  # No gradient flows into the encodings through the statistics.
  grad = jax.grad(lambda z: jnp.sum(lsv.update_class_stats(
      lsv.ClassStats.zeros(3, 2), z, jnp.array([0, 0, 1]), 1.0).total_sq))(z1)
  np.testing.assert_array_equal(grad, 0.0)


def test_class_gaussian_logits_hand_computed():
  mu = jnp.array([[0.0, 0.0], [2.0, -1.0]])
  sigma = jnp.array([[1.0, 2.0], [0.5, 1.0]])
  z = jnp.array([[1.0, 1.0], [2.0, -1.0]])
  logpdf = lambda x, m, s: -0.5 * ((x - m) / s) ** 2 - np.log(s * np.sqrt(2 * np.pi))
  expected = [[sum(logpdf(z[i, j], mu[k, j], sigma[k, j]) for j in range(2)) for k in range(2)]
              for i in range(2)]
  np.testing.assert_allclose(lsv.class_gaussian_logits(z, mu, sigma), expected, rtol=1e-5)


# --- (c) The generator and the cosine score ------------------------------------------


def _known_stats(mu, sigma, count=7.0):
  return lsv.ClassStats(count=jnp.full((mu.shape[0],), count),
                        total=count * mu, total_sq=count * (sigma ** 2 + mu ** 2))


def _generated(state, n, num):
  d = state.stats.total.shape[1]
  layout = latent.CodeLayout(noise_dim=n * d, categorical=(10,), num_continuous=0)
  codes = latent.sample(jax.random.PRNGKey(n), layout, num)
  z = jax.jit(METHOD.generated_latents, static_argnums=2)(state, codes, layout)
  return np.asarray(z), np.asarray(codes.categorical[:, 0]), codes, layout


def test_generator_mean_and_spread_shrink_by_sqrt_n():
  _, state = _state('smoke')
  rng = np.random.default_rng(0)
  mu = jnp.asarray(rng.normal(0, 3, (10, 4)), jnp.float32)
  sigma = jnp.asarray(rng.uniform(0.5, 2.0, (10, 4)), jnp.float32)
  state = state.replace(stats=_known_stats(mu, sigma), theta=0.5)
  got_mu, got_sigma = lsv.class_moments(state.stats)
  np.testing.assert_allclose(got_mu, mu, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got_sigma, sigma, rtol=1e-4)
  spreads = {}
  for n in (1, 4):
    z, y, _, _ = _generated(state, n, 40_000)
    spreads[n] = np.stack([z[y == k].std(axis=0) for k in range(10)])
    means = np.stack([z[y == k].mean(axis=0) for k in range(10)])
    # ~4000 rows per class: the mean is within a few standard errors.
    np.testing.assert_allclose(means, mu, atol=4 * 0.5 * 2.0 / np.sqrt(n * 3000))
    np.testing.assert_allclose(spreads[n], 0.5 * np.asarray(sigma) / np.sqrt(n), rtol=0.06)
  np.testing.assert_allclose(np.mean(spreads[1] / spreads[4]), 2.0, rtol=0.02)
  # theta = 0: every sample of a class is mu_y.
  z, y, _, _ = _generated(state.replace(theta=0.0), 2, 50)
  np.testing.assert_allclose(z, np.asarray(mu)[y], atol=1e-6)


def test_generate_decodes_the_generators_latents():
  _, state = _state('smoke')
  z, _, codes, layout = _generated(state, 2, 8)
  images = jax.jit(METHOD.generate, static_argnums=2)(state, codes, layout)
  assert images.shape == (8, 32, 32, 1) and float(jnp.max(jnp.abs(images))) <= 1.0
  decode = jax.jit(lambda s, z: s.ae.apply_fn({'params': s.ae.params}, z,
                                              method=lsv.MLPVAE.decode))
  np.testing.assert_allclose(images, decode(state, jnp.asarray(z)), atol=1e-6)


def test_eval_outputs_and_cluster_heads():
  config, state = _state('smoke')
  assert config.model.cluster_head == 'none' and state.cluster_head == 'none'
  batch = _batch(8)
  out = jax.jit(METHOD.eval_outputs)(state, batch['image'])
  mean, _ = state.ae.apply_fn({'params': state.ae.params}, batch['image'],
                              method=lsv.MLPVAE.encode)
  np.testing.assert_allclose(out['z'], mean, atol=1e-6)
  assert out['recon'].shape == (8, 32, 32, 1)
  assert out['cat_logits'] == ()   # a class-conditional generator, not a clusterer.
  config = latent_stats_vae_mnist.get_config('smoke')
  config.model.cluster_head = 'class_gaussian'
  abstract = jax.eval_shape(functools.partial(METHOD.init_state, config=config,
                                              models=METHOD.build_models(config)),
                            jax.random.PRNGKey(0))
  assert abstract.cluster_head == 'class_gaussian'
  (logits,) = METHOD.eval_outputs(state.replace(cluster_head='class_gaussian'),
                                  batch['image'])['cat_logits']
  np.testing.assert_allclose(logits, lsv.class_gaussian_logits(mean, *lsv.class_moments(
      state.stats)), rtol=1e-5)


def test_cosine_similarity_hand_computed():
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (6, 2, 2, 1))
  categories = np.array([0, 0, 0, 1, 1, 2])   # class 2 has one image: no pair.
  x = (images.reshape(6, -1) + 1) / 2         # the paper's [0, 1] pixels.
  cos = lambda a, b: a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
  per_class = [np.mean([cos(x[i], x[j]) for i, j in itertools.permutations(
      np.flatnonzero(categories == k), 2)]) for k in (0, 1)]
  got = lsv.generated_cosine_similarity(images, categories, 3)
  np.testing.assert_allclose(got, np.mean(per_class), rtol=1e-10)
  # Streaming: sums of two halves add up to the whole.
  a = metrics.class_unit_sums(images[:3], categories[:3], 3)
  b = metrics.class_unit_sums(images[3:], categories[3:], 3)
  np.testing.assert_allclose(metrics.mean_pairwise_cosine(a[0] + b[0], a[1] + b[1]), got)
  # Identical images: 1; and nan without any pair.
  same = np.repeat(images[:1], 4, axis=0)
  np.testing.assert_allclose(lsv.generated_cosine_similarity(same, np.zeros(4, int), 1), 1.0)
  assert math.isnan(lsv.generated_cosine_similarity(images[:1], np.zeros(1, int), 1))


# --- Data parallelism with labels (methods_test's 1-vs-4 harness feeds images only) ---


def _run_labelled(config, devices, num_steps=3):
  mesh = parallel.make_mesh(devices)
  state = state_lib.create_state(config, mesh)
  step_fn = train.make_train_step(config, mesh)
  for i in range(num_steps):
    batch = {k: np.asarray(v) for k, v in _batch(config.batch_size, seed=i).items()}
    state, metrics = step_fn(state, parallel.shard_batch(batch, mesh))
  return jax.device_get(state), jax.device_get(metrics)


def test_four_devices_match_one_device_with_labels():
  config = latent_stats_vae_mnist.get_config('mmd_smoke')
  one, m1 = _run_labelled(config, jax.devices()[:1])
  four, m4 = _run_labelled(config, jax.devices()[:4])
  assert parallel_test._paths(one) == parallel_test._paths(four)  # pylint: disable=protected-access
  assert float(jnp.sum(one.stats.count)) > 0
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(one), jax.tree.leaves(four)):
    scale = float(np.max(np.abs(a))) if np.size(a) else 0.0
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale + 1e-7,
                               err_msg=jax.tree_util.keystr(path))
  for k in m1:
    np.testing.assert_allclose(m1[k], m4[k], rtol=1e-5, atol=1e-6, err_msg=k)


# --- (d) The real CLIs on a tiny on-disk MNIST -----------------------------------------


def _cli(env, module, *args):
  result = subprocess.run([sys.executable, '-m', module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, f'{module} {args}:\n{result.stderr[-3000:]}'
  return result.stdout


def test_main_evaluate_traverse_through_the_real_cli(tmp_path):
  data_dir = fake_mnist.prepare(str(tmp_path), 256, 40)
  env = dict(os.environ, TFDS_DATA_DIR=data_dir, PYTHONPATH=str(REPO))
  workdir, out = tmp_path / 'run', tmp_path / 'figures'
  _cli(env, 'experiments.main', '--config=configs/latent_stats_vae_mnist.py:smoke',
       f'--workdir={workdir}')
  assert checkpointing.Checkpointer(str(workdir), read_only=True).all_steps()[-1] == 6
  # The real pipeline's labels reached the step: 6 batches of 16, forgotten at 0.998.
  os.environ['TFDS_DATA_DIR'] = data_dir
  state, config, _ = evaluation.load_checkpoint(str(workdir))
  assert isinstance(state, lsv.LatentStatsVAEState) and state.theta == config.model.theta
  np.testing.assert_allclose(float(jnp.sum(state.stats.count)),
                             16 * sum(0.998 ** t for t in range(6)), rtol=1e-5)
  _cli(env, 'experiments.evaluate', f'--workdir={workdir}')
  with open(workdir / 'eval.json') as f:
    scores = json.load(f)
  assert tuple(scores) == evaluation.CHECKPOINT_METRIC_KEYS and scores['step'] == 6
  # Category y is class y (`categories_are_classes`): the paper's measures,
  # generated-label accuracy and within-class cosine, are scored without a
  # cluster head, and no clustering error is claimed.
  for key in ('recon_mse', 'frechet_distance', 'recon_frechet_distance',
              'generated_label_accuracy', 'generated_cosine_similarity',
              'latent_frechet_distance', 'latent_kmeans_error', 'latent_gmm_error'):
    assert isinstance(scores[key], float), key
  assert scores['test_error_hungarian'] is None and scores['nmi'] is None
  stdout = _cli(env, 'experiments.traverse', f'--workdir={workdir}', f'--out={out}')
  figures = ['samples_by_category.png', 'reconstructions.png']
  assert sorted(os.listdir(out)) == sorted(figures)
  assert stdout.split() == [str(out / f) for f in figures]
