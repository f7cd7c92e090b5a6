"""The combined update: every state moves, losses stay finite, MI flows where it should."""

import jax
import numpy as np
import pytest

from configs import mnist
from lgae.core import parallel
from lgae.methods.latentgan_ae import step as train_step
from lgae.core import state as state_lib
from lgae import train


def _batch(config, seed=0):
  rng = np.random.default_rng(seed)
  size, channels = config.dataset.image_size, config.dataset.channels
  images = rng.uniform(-1, 1, (config.batch_size, size, size, channels)).astype(np.float32)
  return {'image': images, 'label': np.zeros((config.batch_size,), np.int32)}


def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope='module')
def one_step():
  config = mnist.get_config('smoke')
  mesh = parallel.make_mesh()
  state = state_lib.create_state(config, mesh)
  before = jax.device_get(state)
  step_fn = train.make_train_step(config, mesh)
  after, metrics = step_fn(state, parallel.shard_batch(_batch(config), mesh))
  return config, before, jax.device_get(after), jax.device_get(metrics)


def test_one_step_updates_all_three_states(one_step):
  _, before, after, _ = one_step
  assert _changed(before.ae.params['encoder'], after.ae.params['encoder'])
  assert _changed(before.ae.params['decoder'], after.ae.params['decoder'])
  assert _changed(before.ae.batch_stats, after.ae.batch_stats)
  assert _changed(before.gen.params, after.gen.params)
  assert _changed(before.disc.params, after.disc.params)
  assert int(after.step) == int(before.step) + 1
  np.testing.assert_array_equal(before.rng, after.rng)  # draws come from fold_in(rng, step).


def test_metrics_finite_and_complete(one_step):
  _, _, _, metrics = one_step
  expected = {'recon_loss', 'd_loss', 'g_loss', 'mi_cat_loss', 'mi_cont_loss', 'd_real_prob',
              'd_fake_prob'}
  assert expected <= set(metrics)
  for name, value in metrics.items():
    assert np.isfinite(value), name
  # At init Q is near chance: the categorical MI loss is close to ln(10).
  assert abs(metrics['mi_cat_loss'] - np.log(10)) < 0.5


def test_q_heads_and_trunk_learn_from_mi(one_step):
  """All D/Q parameters move in one step: d_head (GAN), q heads and the shared trunk (MI)."""
  _, before, after, _ = one_step
  for name in ('trunk', 'd_head', 'q_cont', 'q_cat0'):
    assert _changed(before.disc.params[name], after.disc.params[name]), name


def test_mi_gradient_reaches_trunk_without_gan_term():
  """With D's GAN signal removed (equal targets on real and fake don't cancel, so use
  lambda weights instead): lambda=0 vs lambda>0 must give different trunk updates."""
  config = mnist.get_config('smoke')
  mesh = parallel.make_mesh()
  batch = parallel.shard_batch(_batch(config), mesh)
  trunks = []
  for lam in (0.0, 1.0):
    with config.unlocked():
      config.loss.lambda_disc = lam
      config.loss.lambda_cont = lam
    state = state_lib.create_state(config, mesh)
    new_state, _ = train.make_train_step(config, mesh)(state, batch)
    trunks.append(jax.device_get(new_state.disc.params['trunk']))
  assert _changed(trunks[0], trunks[1])


def test_step_is_deterministic():
  config = mnist.get_config('smoke')
  mesh = parallel.make_mesh()
  step_fn = train.make_train_step(config, mesh)
  outs = []
  for _ in range(2):
    state = state_lib.create_state(config, mesh)
    state, metrics = step_fn(state, parallel.shard_batch(_batch(config), mesh))
    outs.append(jax.device_get((state, metrics)))
  for x, y in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1])):
    np.testing.assert_array_equal(x, y)


def test_encoder_adversarial_option_changes_encoder_update():
  config = mnist.get_config('smoke')
  mesh = parallel.make_mesh()
  batch = parallel.shard_batch(_batch(config), mesh)
  encs = []
  for weight in (0.0, 1.0):
    with config.unlocked():
      config.loss.encoder_adversarial_weight = weight
    state = state_lib.create_state(config, mesh)
    new_state, metrics = train.make_train_step(config, mesh)(state, batch)
    encs.append(jax.device_get(new_state.ae.params['encoder']))
    assert ('encoder_adv_loss' in metrics) == (weight > 0)
  assert _changed(encs[0], encs[1])
