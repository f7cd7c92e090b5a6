"""The UMAP+GMM teacher of Q (lgae.methods.latentgan_ae.latent_teacher) and its term in the latent-GAN step."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mnist
from lgae.core import config_validation, parallel
from lgae.evaluation import metrics
from lgae.methods.latentgan_ae import latent_teacher
from lgae.core import state as state_lib
from lgae.methods.latentgan_ae import step as train_step
from lgae import train


def _blobs(num_per_blob=150, dims=16, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(scale=10.0, size=(4, dims))
  labels = np.repeat(np.arange(4), num_per_blob)
  return (centres[labels] + rng.normal(size=(len(labels), dims))).astype(np.float32), labels


def test_umap_gmm_recovers_separated_blobs_deterministically():
  z, labels = _blobs()
  clusters = latent_teacher.umap_gmm_clusters(z, 4, num_neighbours=10, dims=2, seed=0)
  assert clusters.shape == labels.shape and clusters.dtype == np.int32
  assert metrics.clustering_scores(labels, clusters)['test_error_hungarian'] == 0.0
  again = latent_teacher.umap_gmm_clusters(z, 4, num_neighbours=10, dims=2, seed=0)
  np.testing.assert_array_equal(clusters, again)


def test_too_few_latents_are_refused():
  with pytest.raises(ValueError, match='latents'):
    latent_teacher.umap_gmm_clusters(np.zeros((5, 3), np.float32), 10, num_neighbours=20)


def test_missing_umap_is_one_clear_config_error(monkeypatch):
  monkeypatch.setitem(sys.modules, 'umap', None)   # import umap -> ImportError
  config = mnist.get_config('best')
  with pytest.raises(config_validation.ConfigError, match=r'needs umap-learn.*pip install umap-learn'):
    config_validation.validate(config, check_dataset=False)
  with config.unlocked():
    config.loss.teacher_weight = 0.0
  config_validation.validate(config, check_dataset=False)   # not needed without the teacher.


def _train_q(teacher_weight, steps=200, **loss):
  config = mnist.get_config('smoke')
  with config.unlocked():
    config.schedule = 'two_stage'
    config.two_stage.autoencoder_steps = 0
    config.two_stage.autoencoder_workdir = 'unused'
    config.loss.teacher_weight = teacher_weight
    config.loss.update(loss)
    config.optimizer.learning_rate = 1e-3
  mesh = parallel.make_mesh(jax.devices()[:1])
  state = state_lib.create_state(config, mesh)
  rng = np.random.default_rng(0)
  z = rng.normal(size=(32, config.model.latent_dim)).astype(np.float32)
  teacher = rng.integers(0, 10, (32,)).astype(np.int32)
  cache = jax.device_put({'z': z, 'neighbours': np.zeros((32, 1), np.int32),
                          'teacher': teacher}, parallel.replicated(mesh))
  step = train.make_phase_step(config, mesh, 'latent_gan')
  for _ in range(steps):
    state, step_metrics = step(state, cache)
  logits = state.disc.apply_fn({'params': state.disc.params}, z)['cat_logits'][0]
  return np.mean(np.argmax(np.asarray(logits), -1) == teacher), step_metrics, state


def test_teacher_term_trains_q_towards_the_teacher_on_real_latents():
  agreement, step_metrics, _ = _train_q(teacher_weight=5.0)
  assert 'teacher_ce' in step_metrics
  # 32 random targets over 10 classes: chance is ~10 %; Q must learn them.
  assert agreement > 0.9
  without, step_metrics, _ = _train_q(teacher_weight=0.0)
  assert 'teacher_ce' not in step_metrics and without < 0.5


def _same(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_without_the_gan_q_learns_the_teacher_alone_and_g_is_untouched():
  # loss.gan_weight = 0, the ablation "Q distilled from the teacher, no G/D".
  agreement, step_metrics, state = _train_q(teacher_weight=5.0, steps=100, gan_weight=0.0)
  assert agreement > 0.9
  assert set(step_metrics) == {'teacher_ce'}   # no D, MI or G terms were computed.
  _, _, with_gan = _train_q(teacher_weight=5.0, steps=100)
  fresh = state_lib.create_state(mnist.get_config('smoke'), parallel.make_mesh(jax.devices()[:1]))
  assert _same(state.gen.params, fresh.gen.params) and int(state.gen.step) == 0
  assert not _same(with_gan.gen.params, fresh.gen.params)


def test_gan_weight_one_is_the_method_bitwise():
  _, _, default = _train_q(teacher_weight=5.0, steps=3)
  _, _, explicit = _train_q(teacher_weight=5.0, steps=3, gan_weight=1.0)
  _, _, half = _train_q(teacher_weight=5.0, steps=3, gan_weight=0.5)
  assert _same(default.disc.params, explicit.disc.params)
  assert _same(default.gen.params, explicit.gen.params)
  assert not _same(default.disc.params, half.disc.params)


def test_teacher_gan_steps_switches_the_term_off_after_that_many_latent_gan_steps():
  def one_step(gan_step, **loss):
    config = mnist.get_config('smoke')
    with config.unlocked():
      config.schedule = 'two_stage'
      config.two_stage.autoencoder_steps = 0
      config.two_stage.autoencoder_workdir = 'unused'
      config.loss.teacher_weight = 5.0
      config.loss.update(loss)
    mesh = parallel.make_mesh(jax.devices()[:1])
    state = state_lib.create_state(config, mesh).replace(step=jnp.asarray(gan_step, jnp.int32))
    rng = np.random.default_rng(0)
    cache = jax.device_put({
        'z': rng.normal(size=(32, config.model.latent_dim)).astype(np.float32),
        'neighbours': np.zeros((32, 1), np.int32),
        'teacher': rng.integers(0, 10, (32,)).astype(np.int32)}, parallel.replicated(mesh))
    new_state, _ = train.make_phase_step(config, mesh, 'latent_gan')(state, cache)
    return jax.device_get(new_state.disc.params)

  def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

  # Step 2 is the last of a 3-step warm start: the teacher still acts there.
  assert not same(one_step(2, teacher_gan_steps=3), one_step(2, teacher_weight=0.0))
  assert same(one_step(2, teacher_gan_steps=3), one_step(2))
  # From step 3 on, D/Q's update is the one without the teacher.
  assert same(one_step(3, teacher_gan_steps=3), one_step(3, teacher_weight=0.0))
  assert not same(one_step(3), one_step(3, teacher_weight=0.0))
