"""Data parallelism: 1 and 4 devices give the same training, and bad batch sizes fail early."""

import jax
import numpy as np
import pytest

from configs import mnist
from lgae.core import parallel
from lgae.methods.latentgan_ae import step as train_step
from lgae.core import state as state_lib
from lgae import train


def _run(config, devices, num_steps):
  mesh = parallel.make_mesh(devices)
  state = state_lib.create_state(config, mesh)
  step_fn = train.make_train_step(config, mesh)
  rng = np.random.default_rng(0)
  size = config.dataset.image_size
  for _ in range(num_steps):
    images = rng.uniform(-1, 1, (config.batch_size, size, size, 1)).astype(np.float32)
    batch = parallel.shard_batch({'image': images}, mesh)
    state, metrics = step_fn(state, batch)
  return jax.device_get(state), jax.device_get(metrics), batch


def _paths(tree):
  """Every leaf's path: equal lists mean zipping the leaves pairs like with like.

  (Treedefs themselves differ between runs only in the static apply_fns.)
  """
  return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]


def test_four_devices_match_one_device():
  assert jax.device_count() >= 4, 'conftest forces 4 host devices'
  config = mnist.get_config('smoke')
  one, m1, _ = _run(config, jax.devices()[:1], num_steps=3)
  four, m4, batch4 = _run(config, jax.devices()[:4], num_steps=3)
  # The 4-device batch really is split four ways.
  assert len(batch4['image'].addressable_shards) == 4
  assert batch4['image'].addressable_shards[0].data.shape[0] == config.batch_size // 4
  assert _paths(one) == _paths(four) and set(m1) == set(m4)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(one), jax.tree.leaves(four)):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6, err_msg=jax.tree_util.keystr(path))
  for k in m1:
    np.testing.assert_allclose(m1[k], m4[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_indivisible_batch_is_a_clear_error():
  mesh = parallel.make_mesh(jax.devices()[:4])
  with pytest.raises(ValueError, match=r'batch_size=30 does not divide over the 4 devices'):
    parallel.check_divisible(30, mesh)
  parallel.check_divisible(32, mesh)


def test_state_is_replicated_and_batch_sharded():
  config = mnist.get_config('smoke')
  mesh = parallel.make_mesh(jax.devices()[:4])
  state = state_lib.create_state(config, mesh)
  leaf = jax.tree.leaves(state.gen.params)[0]
  assert leaf.sharding.is_fully_replicated
  assert len(leaf.sharding.device_set) == 4


def _run_latent_gan(config, devices, num_steps):
  mesh = parallel.make_mesh(devices)
  state = state_lib.create_state(config, mesh)
  state = state.replace(step=state.step + config.two_stage.autoencoder_steps)
  rng = np.random.default_rng(0)
  z = rng.normal(size=(64, config.model.latent_dim)).astype(np.float32)
  neighbours = rng.integers(0, 64, (64, 3)).astype(np.int32)
  teacher = rng.integers(0, 10, (64,)).astype(np.int32)
  cache = jax.device_put({'z': z, 'neighbours': neighbours, 'teacher': teacher},
                         parallel.replicated(mesh))
  step_fn = train.make_phase_step(config, mesh, 'latent_gan')
  for _ in range(num_steps):
    state, metrics = step_fn(state, cache)
  return jax.device_get(state), jax.device_get(metrics)


def test_two_stage_latent_gan_step_four_devices_match_one_device():
  config = mnist.get_config('smoke')
  with config.unlocked():
    config.schedule = 'two_stage'
    config.loss.neighbour_weight = 1.0
    config.loss.teacher_weight = 1.0
  one, m1 = _run_latent_gan(config, jax.devices()[:1], num_steps=3)
  four, m4 = _run_latent_gan(config, jax.devices()[:4], num_steps=3)
  assert _paths(one) == _paths(four)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(one), jax.tree.leaves(four)):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6, err_msg=jax.tree_util.keystr(path))
  assert set(m1) == set(m4) and {'neighbour_consistency', 'teacher_ce'} <= set(m1)
  for k in m1:
    np.testing.assert_allclose(m1[k], m4[k], rtol=1e-5, atol=1e-6, err_msg=k)
