"""The per-network optimiser: D/Q may have its own Adam, the rest keep the shared one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from lgae.core import state as state_lib
from lgae.methods.latentgan_ae import networks
from lgae.methods.latentgan_ae import state as latentgan_state


def _one_update(config, network, grad=1.0):
  """The first Adam update of a scalar parameter with gradient `grad`."""
  tx = state_lib.make_optimizer(config, network)
  params = jnp.zeros(())
  updates, _ = tx.update(jnp.asarray(grad), tx.init(params), params)
  return float(updates)


def test_shared_optimiser_by_default():
  config = common.get_base_config()
  shared = _one_update(config, 'autoencoder')
  # Adam's first step is -lr * sign(g) whatever b1.
  np.testing.assert_allclose(shared, -config.optimizer.learning_rate, rtol=1e-4)
  assert _one_update(config, 'discriminator') == shared
  assert _one_update(config, 'generator') == shared


def test_disc_learning_rate_only_for_discriminator():
  config = common.get_base_config()
  config.optimizer.disc_learning_rate = 1e-3
  np.testing.assert_allclose(_one_update(config, 'discriminator'), -1e-3, rtol=1e-4)
  np.testing.assert_allclose(_one_update(config, 'generator'), -config.optimizer.learning_rate,
                             rtol=1e-4)
  np.testing.assert_allclose(_one_update(config, 'autoencoder'), -config.optimizer.learning_rate,
                             rtol=1e-4)


def _second_update(config, network):
  """Second Adam update after gradients +1 then -1: depends on b1 through the first moment."""
  tx = state_lib.make_optimizer(config, network)
  params = jnp.zeros(())
  opt_state = tx.init(params)
  _, opt_state = tx.update(jnp.asarray(1.0), opt_state, params)
  updates, _ = tx.update(jnp.asarray(-1.0), opt_state, params)
  return float(updates)


def test_disc_b1_only_for_discriminator():
  config = common.get_base_config()
  shared = _second_update(config, 'discriminator')
  config.optimizer.disc_b1 = 0.9
  assert _second_update(config, 'discriminator') != pytest.approx(shared)
  assert _second_update(config, 'generator') == pytest.approx(shared)


def test_init_state_gives_disc_its_own_optimiser():
  config = common.get_base_config()
  config.optimizer.disc_learning_rate = 1e-3
  models = networks.build_models(config)
  s = jax.eval_shape(lambda k: latentgan_state.init_state(k, config, models), jax.random.PRNGKey(0))
  probe = jnp.zeros(())
  d_update, _ = s.disc.tx.update(jnp.asarray(1.0), s.disc.tx.init(probe), probe)
  g_update, _ = s.gen.tx.update(jnp.asarray(1.0), s.gen.tx.init(probe), probe)
  np.testing.assert_allclose(float(d_update), -1e-3, rtol=1e-4)
  np.testing.assert_allclose(float(g_update), -config.optimizer.learning_rate, rtol=1e-4)


def test_configs_saved_without_the_fields_still_build():
  config = common.get_base_config()
  del config.optimizer['disc_learning_rate']
  del config.optimizer['disc_b1']
  np.testing.assert_allclose(_one_update(config, 'discriminator'),
                             -config.optimizer.learning_rate, rtol=1e-4)
