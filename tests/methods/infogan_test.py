"""InfoGAN (image space): networks, the combined step against a hand-written one, Q learning."""

import functools
import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import infogan_mnist
from lgae import methods
from lgae.core import config_validation, latent
from lgae.core import state as state_lib
from lgae.methods import infogan
from lgae.nets import dcgan

METHOD = infogan.InfoGAN()


def _config(variant='smoke', **overrides):
  config = infogan_mnist.get_config(variant)
  with config.unlocked():
    for name, value in overrides.items():
      group, field = name.split('.') if '.' in name else (None, name)
      (config[group] if group else config)[field] = value
  return config


def _init(config):
  models = METHOD.build_models(config)
  init = jax.jit(functools.partial(METHOD.init_state, config=config, models=models))
  return init(jax.random.PRNGKey(0))


def _images(config, n=None, seed=0):
  rng = np.random.default_rng(seed)
  size, channels = config.dataset.image_size, config.dataset.channels
  return rng.uniform(-1, 1, (n or config.batch_size, size, size, channels)).astype(np.float32)


def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _validation_messages(config):
  messages = []
  METHOD.validate(config, lambda ok, message: None if ok else messages.append(message))
  return messages


@pytest.fixture(scope='module')
def smoke_state():
  config = _config()
  return config, _init(config)


# --- Networks -----------------------------------------------------------------


@pytest.mark.parametrize('in_features, out_features, side', [(128, 64, 8), (64, 1, 16)])
def test_conv_transpose_equals_flax_transposed_conv(in_features, out_features, side):
  """The low-res phase computation is nn.ConvTranspose(4x4, stride 2, SAME), kernel for kernel."""
  x = jax.random.normal(jax.random.PRNGKey(1), (3, side, side, in_features))
  ours = dcgan.ConvTranspose4x4(out_features)
  variables = ours.init(jax.random.PRNGKey(2), x)
  variables = jax.tree.map(lambda v: v + 0.1, variables)   # a non-zero bias too.
  reference = nn.ConvTranspose(out_features, (4, 4), strides=(2, 2), padding='SAME')
  expected = reference.apply(variables, x)
  got = ours.apply(variables, x)
  assert got.shape == (3, 2 * side, 2 * side, out_features)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('variant', ['paper', 'smoke'])
def test_output_shapes(variant):
  config = _config(variant)
  generator, discriminator = METHOD.build_models(config)
  layout = METHOD.code_layout(config)
  assert layout.input_dim == config.codes.generator_input_dim
  n = 5
  g_vars = jax.eval_shape(lambda: generator.init(jax.random.PRNGKey(0),
                                                 jnp.zeros((n, layout.input_dim)), train=False))
  images = jax.eval_shape(lambda v: generator.apply(v, jnp.zeros((n, layout.input_dim)),
                                                    train=False), g_vars)
  assert images.shape == (n, 32, 32, 1)
  x = jnp.zeros((n, 32, 32, 1))
  d_vars = jax.eval_shape(lambda: discriminator.init(jax.random.PRNGKey(0), x, train=False))
  out = jax.eval_shape(lambda v: discriminator.apply(v, x, train=False), d_vars)
  assert out['logit'].shape == (n,)
  assert [o.shape for o in out['cat_logits']] == [(n, 10)]
  assert out['cont_mean'].shape == (n, 2)


def test_paper_parameter_counts():
  """Counted by hand from the layer sizes (no bias before a BatchNorm; 32x32 input)."""
  config = _config('paper')
  state = jax.eval_shape(functools.partial(METHOD.init_state, config=config,
                                           models=METHOD.build_models(config)),
                         jax.random.PRNGKey(0))
  generator = (74 * 1024 + 2 * 1024              # fc-o1024, BN
               + 1024 * 8 * 8 * 128 + 2 * 8192    # fc to the 8x8x128 map, BN
               + 4 * 4 * 128 * 64 + 2 * 64        # upconv4-o64, BN
               + 4 * 4 * 64 * 1 + 1)              # upconv4-o1 (+ bias)
  discriminator = (4 * 4 * 1 * 64 + 64            # conv4-o64 (+ bias, no BN)
                   + 4 * 4 * 64 * 128 + 2 * 128   # conv4-o128, BN
                   + 8 * 8 * 128 * 1024 + 2 * 1024  # fc-o1024, BN
                   + 1024 + 1                     # D head
                   + 1024 * 128 + 2 * 128         # Q fc-o128, BN
                   + 128 * 10 + 10 + 128 * 2 + 2)  # Q's Cat(10) and 2 mean heads
  assert (generator, discriminator) == (8_615_041, 8_656_973)
  assert state_lib.count_params(state.gen.params) == generator
  assert state_lib.count_params(state.disc.params) == discriminator
  # BatchNorm running mean and variance of every BN layer.
  assert state_lib.count_params(state.gen.batch_stats) == 2 * (1024 + 8192 + 64)
  assert state_lib.count_params(state.disc.batch_stats) == 2 * (128 + 1024 + 128)


# --- The combined step ----------------------------------------------------------


def test_train_step_deterministic_and_updates_everything(smoke_state):
  config, state = smoke_state
  step = jax.jit(functools.partial(METHOD.train_step, config=config))
  batch = {'image': _images(config)}
  after, metrics = jax.device_get(step(state, batch))
  again, metrics_again = jax.device_get(step(state, batch))
  assert not _changed(after, again)
  assert metrics == metrics_again
  before = jax.device_get(state)
  for network in ('gen', 'disc'):
    for leaf in ('params', 'batch_stats'):
      assert _changed(getattr(getattr(before, network), leaf),
                      getattr(getattr(after, network), leaf)), (network, leaf)
  # Every D/Q head moves: d_head through the GAN loss, Q's through the MI loss.
  for name in ('d_head', 'q_cat0', 'q_cont', 'conv0', 'fc'):
    assert _changed(before.disc.params[name], after.disc.params[name]), name
  assert int(after.step) == 1
  np.testing.assert_array_equal(before.rng, after.rng)
  assert set(metrics) == {'d_loss', 'g_loss', 'mi_cat_loss', 'mi_cont_loss', 'd_real_prob',
                          'd_fake_prob'}
  for name, value in metrics.items():
    assert np.shape(value) == () and np.isfinite(value), name
  assert abs(metrics['mi_cat_loss'] - math.log(10)) < 0.5   # Q near chance at init.
  # A different step draws different codes.
  later, _ = step(after, batch)
  assert _changed(jax.device_get(later).gen.params, after.gen.params)


def _softplus(x):
  return jnp.logaddexp(x, 0.0)


def test_train_step_is_sgd_on_the_hand_written_losses():
  """With plain SGD the update is -lr x the gradient of InfoGAN's losses, written out here.

  D/Q: BCE(real -> 1) + BCE(fake -> 0) + lambda_disc CE(Q_cat, c) + lambda_cont
  Gaussian NLL(Q_mean, u), both forwards in train mode (separate BatchNorm
  batches). G: -log D(G) + the same MI terms, through the already-updated D/Q,
  differentiated here directly (not through the saved VJP).
  """
  lr, lambda_disc, lambda_cont = 0.05, 0.7, 1.3
  config = _config('smoke', **{'batch_size': 8, 'loss.lambda_disc': lambda_disc,
                               'loss.lambda_cont': lambda_cont})
  generator, discriminator = METHOD.build_models(config)
  state = _init(config)
  state = state.replace(
      gen=state_lib.AutoencoderState.create(apply_fn=generator.apply, params=state.gen.params,
                                            tx=optax.sgd(lr), batch_stats=state.gen.batch_stats),
      disc=state_lib.AutoencoderState.create(apply_fn=discriminator.apply,
                                             params=state.disc.params, tx=optax.sgd(lr),
                                             batch_stats=state.disc.batch_stats))
  images = jnp.asarray(_images(config, seed=3))
  after, metrics = jax.jit(functools.partial(METHOD.train_step, config=config))(
      state, {'image': images})

  layout = latent.CodeLayout.from_config(config)
  k_codes, _, _ = jax.random.split(jax.random.fold_in(state.rng, 0), 3)
  codes = latent.sample(k_codes, layout, 8)
  g_input = latent.generator_input(codes, layout)

  def generate(params):
    return generator.apply({'params': params, 'batch_stats': state.gen.batch_stats}, g_input,
                           train=True, mutable=['batch_stats'])

  fake, gen_stats = generate(state.gen.params)

  def discriminate(params, batch_stats, x):
    return discriminator.apply({'params': params, 'batch_stats': batch_stats}, x, train=True,
                               mutable=['batch_stats'])

  def mi(out):
    logits = out['cat_logits'][0]
    ce = jnp.mean(jax.nn.logsumexp(logits, axis=-1)
                  - jnp.take_along_axis(logits, codes.categorical[:, :1], axis=1)[:, 0])
    nll = jnp.mean(jnp.sum(0.5 * (codes.continuous - out['cont_mean']) ** 2
                           + 0.5 * math.log(2 * math.pi), axis=-1))
    return ce, nll

  def d_loss_fn(params):
    real_out, stats = discriminate(params, state.disc.batch_stats, images)
    fake_out, stats = discriminate(params, stats['batch_stats'], jax.lax.stop_gradient(fake))
    d_loss = jnp.mean(_softplus(-real_out['logit'])) + jnp.mean(_softplus(fake_out['logit']))
    ce, nll = mi(fake_out)
    return d_loss + lambda_disc * ce + lambda_cont * nll, (d_loss, ce, nll, stats)

  (_, (d_loss, ce, nll, disc_stats)), d_grads = jax.value_and_grad(
      d_loss_fn, has_aux=True)(state.disc.params)
  disc_params = jax.tree.map(lambda p, g: p - lr * g, state.disc.params, d_grads)

  def g_loss_fn(params):
    out, _ = discriminate(disc_params, disc_stats['batch_stats'], generate(params)[0])
    ce, nll = mi(out)
    return jnp.mean(_softplus(-out['logit'])) + lambda_disc * ce + lambda_cont * nll

  gen_params = jax.tree.map(lambda p, g: p - lr * g, state.gen.params,
                            jax.grad(g_loss_fn)(state.gen.params))

  close = functools.partial(np.testing.assert_allclose, rtol=2e-4, atol=2e-6)
  close(metrics['d_loss'], d_loss)
  close(metrics['mi_cat_loss'], ce)
  close(metrics['mi_cont_loss'], nll)
  jax.tree.map(close, after.disc.params, disc_params)
  jax.tree.map(close, after.disc.batch_stats, disc_stats['batch_stats'])
  jax.tree.map(close, after.gen.params, gen_params)
  jax.tree.map(close, after.gen.batch_stats, gen_stats['batch_stats'])

  # G really goes through the updated D/Q: through the old one its step differs.
  def g_loss_old_d(params):
    out, _ = discriminate(state.disc.params, state.disc.batch_stats, generate(params)[0])
    ce, nll = mi(out)
    return jnp.mean(_softplus(-out['logit'])) + lambda_disc * ce + lambda_cont * nll

  stale = jax.tree.map(lambda p, g: p - lr * g, state.gen.params,
                       jax.grad(g_loss_old_d)(state.gen.params))
  assert not np.allclose(stale['fc']['kernel'], after.gen.params['fc']['kernel'],
                         rtol=2e-4, atol=2e-6)


def test_q_learns_the_categorical_code():
  """A few hundred tiny steps: Q reads G's Cat code off its images (CE well below ln 10).

  Four noise dims instead of 62 and D/Q at G's learning rate: at init the
  one-hot code is a small part of G's input, and the test should take seconds.
  """
  config = _config('smoke', **{'dataset.image_size': 16, 'batch_size': 32, 'codes.noise_dim': 4,
                               'codes.generator_input_dim': 16,
                               'optimizer.disc_learning_rate': 1e-3})
  state = _init(config)
  # "Real" data: four fixed random images plus noise; all 250 steps in one scan.
  rng = np.random.default_rng(0)
  prototypes = rng.uniform(-1, 1, (4, 16, 16, 1)).astype(np.float32)
  images = prototypes[rng.integers(0, 4, (250, 32))] + 0.1 * rng.normal(size=(250, 32, 16, 16, 1))
  images = np.clip(images, -1, 1).astype(np.float32)

  def body(state, batch_images):
    state, metrics = METHOD.train_step(state, {'image': batch_images}, config=config)
    return state, metrics['mi_cat_loss']

  _, history = jax.jit(lambda s, x: jax.lax.scan(body, s, x))(state, images)
  history = np.asarray(history)
  assert np.all(np.isfinite(history))
  assert np.mean(history[:10]) > 0.8 * math.log(10), history[:10]   # chance at the start,
  assert np.mean(history[-30:]) < 0.4 * math.log(10), history[-30:]  # far below it at the end.


# --- Evaluation and generation ---------------------------------------------------


def test_eval_outputs(smoke_state):
  config, state = smoke_state
  images = _images(config, n=6)
  out = jax.jit(METHOD.eval_outputs)(state, images)
  assert set(out) == {'z', 'cat_logits'}   # no decoder, so no 'recon'.
  assert out['z'].shape == (6, 2 + 10)
  assert [c.shape for c in out['cat_logits']] == [(6, 10)]
  np.testing.assert_allclose(out['z'][:, 2:], jax.nn.softmax(out['cat_logits'][0]), atol=1e-6)
  # Inference mode: BatchNorm uses running statistics, so each row is
  # independent of the rest of the batch.
  alone = jax.jit(METHOD.eval_outputs)(state, images[2:3])
  np.testing.assert_allclose(alone['z'], out['z'][2:3], rtol=1e-5, atol=1e-6)


def test_generate(smoke_state):
  config, state = smoke_state
  layout = METHOD.code_layout(config)
  codes = latent.sample(jax.random.PRNGKey(4), layout, 5)
  images = jax.jit(METHOD.generate, static_argnums=2)(state, codes, layout)
  assert images.shape == (5, 32, 32, 1)
  assert float(jnp.min(images)) >= -1 and float(jnp.max(images)) <= 1
  one = jax.tree.map(lambda a: a[:1], codes)
  np.testing.assert_allclose(METHOD.generate(state, one, layout), images[:1], rtol=1e-5,
                             atol=1e-6)


def test_registered_and_dispatched_by_state(smoke_state):
  _, state = smoke_state
  assert isinstance(methods.get('infogan'), infogan.InfoGAN)
  assert isinstance(methods.for_state(state), infogan.InfoGAN)


# --- Configuration -----------------------------------------------------------------


@pytest.mark.parametrize('variant', ['paper', 'smoke'])
def test_configs_are_valid(variant):
  config = _config(variant)
  assert config.model_name == METHOD.name
  assert set(config.model) == set(METHOD.model_config())
  assert _validation_messages(config) == []


@pytest.mark.parametrize('override, field', [
    ({'dataset.image_size': 30}, 'config.dataset.image_size'),
    ({'model.q_hidden': 0}, 'config.model.q_hidden'),
])
def test_validate_rejects(override, field):
  messages = _validation_messages(_config('paper', **override))
  assert len(messages) == 1, messages
  assert messages[0].startswith(field + '='), messages


@pytest.mark.parametrize('field, value', [('schedule', 'two_stage'),
                                          ('loss.neighbour_weight', 1.0),
                                          ('loss.encoder_entropy_weight', 0.5)])
def test_latentgan_ae_fields_are_unknown(field, value):
  """The LatentGAN-AE's schedule and loss terms are not in InfoGAN's schema."""
  with pytest.raises(config_validation.ConfigError,
                     match=re.escape(f'config.{field}: unknown field')):
    config_validation.validate(_config('paper', **{field: value}), check_dataset=False)
