"""InfoVAEGAN: networks, each loss term by hand, the step as plain SGD, E learning, CLIs."""

import functools
import json
import math
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import infovaegan_dsprites, infovaegan_mnist
from lgae import methods
from lgae.core import checkpointing, config_validation, latent
from lgae.evaluation import run as evaluation
from lgae.core import state as state_lib
from lgae.methods import infovaegan
from lgae.objectives import vae
from tests import fake_mnist
from tests.methods import methods_test

METHOD = infovaegan.InfoVAEGAN()


def _config(module=infovaegan_mnist, variant='smoke', **overrides):
  config = module.get_config(variant)
  with config.unlocked():
    for name, value in overrides.items():
      group, field = name.split('.') if '.' in name else (None, name)
      (config[group] if group else config)[field] = value
  return config


def _tiny(**overrides):
  """16x16 images, batch 8: cheap to compile and run."""
  return _config(**{'dataset.image_size': 16, 'batch_size': 8, **overrides})


def _init(config):
  models = METHOD.build_models(config)
  return jax.jit(functools.partial(METHOD.init_state, config=config, models=models))(
      jax.random.PRNGKey(0))


def _images(config, n=None, seed=0):
  rng = np.random.default_rng(seed)
  size = config.dataset.image_size
  return rng.uniform(-1, 1, (n or config.batch_size, size, size, 1)).astype(np.float32)


def _messages(config):
  errors = []
  METHOD.validate(config, lambda ok, message: ok or errors.append(message))
  return errors


def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope='module')
def tiny_state():
  config = _tiny()
  return config, _init(config)


# --- (a) Networks ----------------------------------------------------------------


def test_paper_parameter_counts_mnist():
  """Counted by hand (InfoGAN's MNIST layers; no bias before a BatchNorm; 32x32 input)."""
  config = _config(variant='paper')
  state = jax.eval_shape(functools.partial(METHOD.init_state, config=config,
                                           models=METHOD.build_models(config)),
                         jax.random.PRNGKey(0))
  generator = (74 * 1024 + 2 * 1024 + 1024 * 8192 + 2 * 8192   # fc-o1024-bn, fc-o8192-bn
               + 4 * 4 * 128 * 64 + 2 * 64 + 4 * 4 * 64 + 1)   # uc4-o64-bn, uc4-o1 (+ bias)
  trunk = 4 * 4 * 64 + 64 + 4 * 4 * 64 * 128 + 2 * 128         # c4-o64 (+ bias), c4-o128-bn
  encoder = (trunk + 8192 * 1024 + 2 * 1024 + 1024 * 128 + 2 * 128   # fc-o1024-bn, fc-o128-bn
             + 128 * 10 + 10 + 2 * (128 * 2 + 2))              # s logits, mean and log-var of c
  discriminator = trunk + (8192 + 12) * 1024 + 2 * 1024 + 1024 + 1   # [x features, s, c] fc
  assert (generator, encoder, discriminator) == (8_615_041, 8_656_206, 8_536_385)
  assert state_lib.count_params(state.gen.params) == generator
  assert state_lib.count_params(state.enc.params) == encoder
  assert state_lib.count_params(state.disc.params) == discriminator
  assert state_lib.count_params(state.enc.batch_stats) == 2 * (128 + 1024 + 128)
  assert state_lib.count_params(state.disc.batch_stats) == 2 * (128 + 1024)


@pytest.mark.parametrize('module, size, cats, n_cont', [(infovaegan_mnist, 32, (10,), 2),
                                                        (infovaegan_dsprites, 64, (3,), 7)])
def test_output_shapes_and_layout(module, size, cats, n_cont):
  config = _config(module, 'paper')
  encoder, generator, discriminator = METHOD.build_models(config)
  layout = METHOD.code_layout(config)
  assert layout.input_dim == config.codes.generator_input_dim
  assert (layout.categorical, layout.num_continuous) == (cats, n_cont)
  n, code_width = 3, sum(cats) + n_cont
  x = jnp.zeros((n, size, size, 1))
  init = lambda model, *args: jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), *args, train=False))
  images = jax.eval_shape(lambda v: generator.apply(v, jnp.zeros((n, layout.input_dim)),
                                                    train=False),
                          init(generator, jnp.zeros((n, layout.input_dim))))
  assert images.shape == (n, size, size, 1)
  out = jax.eval_shape(lambda v: encoder.apply(v, x, train=False), init(encoder, x))
  assert [o.shape for o in out['cat_logits']] == [(n, k) for k in cats]
  assert out['mean'].shape == out['log_var'].shape == (n, n_cont)
  codes = jnp.zeros((n, code_width))
  d_vars = init(discriminator, x, codes)
  assert jax.eval_shape(lambda v: discriminator.apply(v, x, codes, train=False),
                        d_vars).shape == (n,)
  features = config.model.discriminator_features
  side = size // 2 ** len(features)        # the trunk's output map, flattened, then [s, c].
  assert d_vars['params']['fc']['kernel'].shape == (side * side * features[-1] + code_width, 1024)


@pytest.mark.parametrize('module', [infovaegan_mnist, infovaegan_dsprites])
@pytest.mark.parametrize('variant', ['paper', 'cpu', 'smoke'])
def test_configs_are_valid(module, variant):
  config = module.get_config(variant)
  assert config.model_name == METHOD.name
  assert set(config.model) == set(METHOD.model_config())
  assert _messages(config) == []


def test_mnist_cpu_variant_halves_widths_and_keeps_the_rest():
  # The README's shortened MNIST row: InfoGAN's row length (2,340 updates of
  # 128), every width halved, the paper's codes, losses and optimiser.
  paper, cpu = infovaegan_mnist.get_config('paper'), infovaegan_mnist.get_config('cpu')
  for field in ('generator_fc', 'encoder_fc', 'encoder_hidden', 'discriminator_fc'):
    assert cpu.model[field] * 2 == paper.model[field], field
  for field in ('generator_features', 'encoder_features', 'discriminator_features'):
    assert [2 * f for f in cpu.model[field]] == list(paper.model[field]), field
  for section in ('codes', 'loss', 'optimizer', 'dataset'):
    assert cpu[section].to_dict() == paper[section].to_dict(), section
  steps_per_epoch = 60_000 // cpu.batch_size
  assert (cpu.batch_size, cpu.num_epochs * steps_per_epoch) == (128, 2_340)


@pytest.mark.parametrize('override, field', [
    ({'dataset.image_size': 30}, 'config.dataset.image_size'),
    ({'model.temperature': 0.0}, 'config.model.temperature'),
    ({'model.vae_weight': -1.0}, 'config.model.vae_weight'),
    ({'model.reconstruction': 'l1'}, 'config.model.reconstruction'),
    ({'model.mi_variance': 'fixed'}, 'config.model.mi_variance'),
    ({'model.encoder_trunk': 'shared'}, 'config.model.encoder_trunk'),
    ({'model.instance_noise': -0.1}, 'config.model.instance_noise'),
])
def test_validate_rejects(override, field):
  messages = _messages(_config(variant='paper', **override))
  assert len(messages) == 1 and messages[0].startswith(field + '='), messages


@pytest.mark.parametrize('field, value', [('schedule', 'two_stage'),
                                          ('loss.encoder_adversarial_weight', 1.0)])
def test_latentgan_ae_fields_are_unknown(field, value):
  """The LatentGAN-AE's schedule and loss terms are not in InfoVAEGAN's schema (its own
  encoder weight is config.model.encoder_gan_weight)."""
  with pytest.raises(config_validation.ConfigError,
                     match=re.escape(f'config.{field}: unknown field')):
    config_validation.validate(_config(variant='paper', **{field: value}), check_dataset=False)


def test_registered_and_dispatched_by_state(tiny_state):
  assert isinstance(methods.get('infovaegan'), infovaegan.InfoVAEGAN)
  assert isinstance(methods.for_state(tiny_state[1]), infovaegan.InfoVAEGAN)


# --- (b) Loss terms by hand ----------------------------------------------------------


def test_gumbel_softmax_hand_computed():
  logits = jnp.array([[0.0, math.log(3.0)]])       # s = (1/4, 3/4).
  gumbel = jnp.array([[0.5, -0.5]])
  t = 0.5
  a, b = (math.log(0.25) + 0.5) / t, (math.log(0.75) - 0.5) / t
  expected = np.array([math.exp(a), math.exp(b)]) / (math.exp(a) + math.exp(b))
  got = infovaegan.gumbel_softmax(logits, gumbel, t)
  np.testing.assert_allclose(got[0], expected, rtol=1e-6)
  # Straight-through: one-hot forward, the relaxed sample's gradient.
  hard = infovaegan.gumbel_softmax(logits, gumbel, t, hard=True)
  np.testing.assert_allclose(hard[0], np.eye(2)[int(np.argmax(expected))], atol=1e-7)
  grad = lambda h: jax.grad(lambda l: infovaegan.gumbel_softmax(l, gumbel, t, h)[0, 0])(logits)
  np.testing.assert_allclose(grad(True), grad(False), rtol=1e-6)
  # T -> 0: the one-hot of argmax(log s + g) = argmax(-0.89, -0.79).
  np.testing.assert_allclose(infovaegan.gumbel_softmax(logits, gumbel, 1e-3)[0], [0.0, 1.0],
                             atol=1e-6)


def test_categorical_kl_and_gaussian_nll_hand_computed():
  logits = jnp.log(jnp.array([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]))
  kl = 0.5 * math.log(1.5) + 2 * 0.25 * math.log(0.75)
  np.testing.assert_allclose(vae.categorical_kl_uniform(logits), [kl, 0.0], atol=1e-6)
  c = jnp.array([[0.5, -1.0], [0.0, 0.0]])
  mean = jnp.array([[0.0, -1.0], [1.0, 0.0]])
  log_var = jnp.array([[math.log(4.0), 0.0], [0.0, 0.0]])
  h = 0.5 * math.log(2 * math.pi)
  row0 = (h + 0.5 * math.log(4.0) + 0.5 * 0.25 / 4.0) + h
  row1 = (h + 0.5) + h
  np.testing.assert_allclose(vae.gaussian_nll(c, mean, log_var), (row0 + row1) / 2, rtol=1e-6)


def _softplus(x):
  return jnp.logaddexp(x, 0.0)


def _sgd_state(state, models, lr):
  encoder, generator, discriminator = models
  make = lambda s, model: state_lib.AutoencoderState.create(
      apply_fn=model.apply, params=s.params, tx=optax.sgd(lr), batch_stats=s.batch_stats)
  return state.replace(enc=make(state.enc, encoder), gen=make(state.gen, generator),
                       disc=make(state.disc, discriminator))


@pytest.mark.parametrize('reconstruction, mi_variance, encoder_trunk, instance_noise', [
    ('bernoulli', 'learned', 'own', 0.0),
    ('mse', 'learned', 'own', 0.0),
    ('bernoulli', 'unit', 'own', 0.0),
    ('bernoulli', 'learned', 'discriminator', 0.0),
    ('bernoulli', 'unit', 'own', 0.3),
])
def test_train_step_is_sgd_on_the_hand_written_losses(reconstruction, mi_variance,
                                                      encoder_trunk, instance_noise):
  """With plain SGD, each network moves by -lr x the gradient of the losses written out here.

  D: BCE(D(x, s', c') -> 1) + BCE(D(x_g, s, c) -> 0). Then, through the updated
  D, one loss of (E, G) differentiated directly (no VJP reuse):
    -log D(x_g, s, c) + w_E (-log(1 - D(x, s', c')))
    + l_d CE(E_s(x_g), s) + l_c (-log N(c; mu(x_g), sigma^2(x_g)))
    + w_V [-log p(sg(x_g) | G_sg(z, s'', c'')) + KL_c + KL_s]   (E(sg(x_g)) only)
  with s' straight-through on real images, s'' relaxed; sigma^2 in the MI term is
  E's (mi_variance 'learned') or 1 ('unit'). With E on D's trunk, E's layers read
  D's trunk features (the old D's for s', the updated D's for x_g), and D's loss
  also has the MI terms of E (fixed) on D's features of x_g. With instance noise,
  every image D sees (real and fake, in both steps) has the same N(0, sigma^2) draw added.
  """
  lr, l_d, l_c, w_e, w_v, t = 0.05, 0.7, 1.3, 0.6, 0.02, 0.8
  config = _tiny(**{'loss.lambda_disc': l_d, 'loss.lambda_cont': l_c,
                    'model.encoder_gan_weight': w_e, 'model.vae_weight': w_v,
                    'model.temperature': t, 'model.reconstruction': reconstruction,
                    'model.mi_variance': mi_variance, 'model.encoder_trunk': encoder_trunk,
                    'model.instance_noise': instance_noise})
  models = METHOD.build_models(config)
  encoder, generator, discriminator = models
  state = _sgd_state(_init(config), models, lr)
  images = jnp.asarray(_images(config, seed=3))
  after, metrics = jax.jit(functools.partial(METHOD.train_step, config=config))(
      state, {'image': images})

  layout = METHOD.code_layout(config)
  k_codes, k_real, k_fake, _, _ = jax.random.split(jax.random.fold_in(state.rng, 0), 5)
  codes = latent.sample(k_codes, layout, 8)
  s = jax.nn.one_hot(codes.categorical[:, 0], 10)
  prior = jnp.concatenate([s, codes.continuous], axis=1)
  g_in = jnp.concatenate([codes.noise, prior], axis=1)
  k_noise_real, k_noise_fake = jax.random.split(
      jax.random.fold_in(jax.random.fold_in(state.rng, 0), 1))
  noisy_real = images + instance_noise * jax.random.normal(k_noise_real, images.shape)
  fake_noise = instance_noise * jax.random.normal(k_noise_fake, images.shape)

  def sample(out, key, hard):   # Eqs. (7)-(8), written out.
    k_gumbel, k_eps = jax.random.split(key)
    (k_g,) = jax.random.split(k_gumbel, 1)
    logits = out['cat_logits'][0]
    y = jax.nn.softmax((jax.nn.log_softmax(logits) + jax.random.gumbel(k_g, logits.shape)) / t)
    if hard:
      y = y + jax.lax.stop_gradient(jax.nn.one_hot(jnp.argmax(y, -1), 10) - y)
    eps = jax.random.normal(k_eps, out['mean'].shape)
    return jnp.concatenate([y, out['mean'] + jnp.exp(0.5 * out['log_var']) * eps], axis=1)

  def run(model, params, stats, *args):
    return model.apply({'params': params, 'batch_stats': stats}, *args, train=True,
                       mutable=['batch_stats'])

  def enc(enc_params, enc_stats, disc_params, x):
    """E on images: its own trunk, or D's (D's statistics from this forward dropped)."""
    if encoder_trunk == 'discriminator':
      x = discriminator.apply({'params': disc_params, 'batch_stats': state.disc.batch_stats}, x,
                              train=True, method=discriminator.features,
                              mutable=['batch_stats'])[0]
    return run(encoder, enc_params, enc_stats, x)

  def mi(out):
    logits = out['cat_logits'][0]
    ce = jnp.mean(-jnp.sum(s * jax.nn.log_softmax(logits), axis=1))
    var = jnp.exp(out['log_var']) if mi_variance == 'learned' else 1.0
    nll = jnp.mean(jnp.sum(0.5 * jnp.log(2 * math.pi * var)
                           + (codes.continuous - out['mean']) ** 2 / (2 * var), axis=1))
    return ce, nll

  fake, g_stats = run(generator, state.gen.params, state.gen.batch_stats, g_in)
  real_out, e_stats = enc(state.enc.params, state.enc.batch_stats, state.disc.params, images)
  real_codes = sample(real_out, k_real, True)

  def d_loss_fn(params):
    real_logit, st = run(discriminator, params, state.disc.batch_stats, noisy_real, real_codes)
    fake_logit, st = run(discriminator, params, st['batch_stats'], fake + fake_noise, prior)
    d_loss = jnp.mean(_softplus(-real_logit)) + jnp.mean(_softplus(fake_logit))
    total = d_loss
    if encoder_trunk == 'discriminator':   # InfoGAN's tie: L_MI trains D's trunk.
      ce, nll = mi(enc(state.enc.params, state.enc.batch_stats, params, fake + fake_noise)[0])
      total += l_d * ce + l_c * nll
    return total, (d_loss, st)

  (_, (d_loss, d_stats)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
      state.disc.params)
  disc_params = jax.tree.map(lambda p, g: p - lr * g, state.disc.params, d_grads)
  disc = lambda x, c: run(discriminator, disc_params, d_stats['batch_stats'], x, c)[0]

  def eg_loss_fn(enc_params, gen_params):
    x_g, _ = run(generator, gen_params, state.gen.batch_stats, g_in)
    r_out, st = enc(enc_params, state.enc.batch_stats, state.disc.params, images)
    loss = jnp.mean(_softplus(-disc(x_g + fake_noise, prior)))
    loss += w_e * jnp.mean(_softplus(disc(noisy_real, sample(r_out, k_real, True))))
    f_out, st = enc(enc_params, st['batch_stats'], disc_params, x_g)
    ce, nll = mi(f_out)
    loss += l_d * ce + l_c * nll
    target = jax.lax.stop_gradient(x_g)
    v_out, _ = enc(enc_params, e_stats['batch_stats'], disc_params, target)
    recon, _ = run(generator, state.gen.params, state.gen.batch_stats,
                   jnp.concatenate([codes.noise, sample(v_out, k_fake, False)], axis=1))
    if reconstruction == 'bernoulli':
      p, q = (recon + 1) / 2, (target + 1) / 2
      rec = jnp.mean(jnp.sum(-(q * jnp.log(p) + (1 - q) * jnp.log(1 - p)), axis=(1, 2, 3)))
    else:
      rec = jnp.mean(jnp.sum((target - recon) ** 2, axis=(1, 2, 3)))
    m, lv = v_out['mean'], v_out['log_var']
    kl_c = jnp.mean(0.5 * jnp.sum(jnp.exp(lv) + m ** 2 - 1 - lv, axis=1))
    probs = jax.nn.softmax(v_out['cat_logits'][0])
    kl_s = jnp.mean(jnp.sum(probs * jnp.log(probs * 10), axis=1))
    loss += w_v * (rec + kl_c + kl_s)
    return loss, (st, ce, nll, rec, kl_c, kl_s)

  (_, (e_stats2, ce, nll, rec, kl_c, kl_s)), (e_grads, g_grads) = jax.value_and_grad(
      eg_loss_fn, argnums=(0, 1), has_aux=True)(state.enc.params, state.gen.params)
  step = lambda params, grads: jax.tree.map(lambda p, g: p - lr * g, params, grads)

  close = functools.partial(np.testing.assert_allclose, rtol=5e-4, atol=5e-6)
  for name, value in (('d_loss', d_loss), ('mi_cat_loss', ce), ('mi_cont_loss', nll),
                      ('recon_loss', rec), ('kl_cont', kl_c), ('kl_cat', kl_s)):
    close(metrics[name], value, err_msg=name)
  jax.tree.map(close, after.disc.params, disc_params)
  jax.tree.map(close, after.disc.batch_stats, d_stats['batch_stats'])
  jax.tree.map(close, after.enc.params, step(state.enc.params, e_grads))
  jax.tree.map(close, after.enc.batch_stats, e_stats2['batch_stats'])
  jax.tree.map(close, after.gen.params, step(state.gen.params, g_grads))
  jax.tree.map(close, after.gen.batch_stats, g_stats['batch_stats'])
  assert int(after.step) == 1


def test_train_step_deterministic_and_draws_from_fold_in(tiny_state):
  config, state = tiny_state
  step = jax.jit(functools.partial(METHOD.train_step, config=config))
  batch = {'image': _images(config)}
  after, metrics = jax.device_get(step(state, batch))
  again, metrics_again = jax.device_get(step(state, batch))
  assert not _changed(after, again) and metrics == metrics_again
  for network in ('enc', 'gen', 'disc'):
    for leaf in ('params', 'batch_stats'):
      assert _changed(getattr(getattr(state, network), leaf),
                      getattr(getattr(after, network), leaf)), (network, leaf)
  np.testing.assert_array_equal(state.rng, after.rng)
  for name, value in metrics.items():
    assert np.shape(value) == () and np.isfinite(value), name
  _, next_metrics = step(state.replace(step=state.step + 1), batch)
  assert float(next_metrics['mi_cont_loss']) != float(metrics['mi_cont_loss'])


def test_encoder_on_discriminator_trunk_reads_ds_features():
  """encoder_trunk='discriminator': E has no conv layer of its own; at evaluation
  it reads D's trunk features, so changing D's trunk changes E's posterior."""
  config = _tiny(**{'model.encoder_trunk': 'discriminator'})
  models = METHOD.build_models(config)
  encoder, _, discriminator = models
  state = _init(config)
  assert 'trunk' not in state.enc.params and 'trunk' in state.disc.params
  images = _images(config, n=6)
  features = discriminator.apply({'params': state.disc.params,
                                  'batch_stats': state.disc.batch_stats}, images, train=False,
                                 method=discriminator.features)
  by_hand = encoder.apply({'params': state.enc.params, 'batch_stats': state.enc.batch_stats},
                          features, train=False)
  out = jax.jit(METHOD.eval_outputs)(state, images)
  np.testing.assert_allclose(out['cat_logits'][0], by_hand['cat_logits'][0], rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(out['z'][:, :2], by_hand['mean'], rtol=1e-5, atol=1e-6)
  bumped = jax.tree.map(lambda p: p * 1.5, state.disc.params['trunk'])
  other = state.replace(disc=state.disc.replace(
      params={**state.disc.params, 'trunk': bumped}))
  assert not np.allclose(jax.jit(METHOD.eval_outputs)(other, images)['z'], out['z'])


# --- (c) The mechanisms acting ----------------------------------------------------


def _two_kinds(n, seed):
  """16x16 images of two kinds: a bright top half or a bright left half, plus noise."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, n)
  images = -np.ones((n, 16, 16, 1), np.float32)
  images[labels == 0, :8] = 1.0
  images[labels == 1, :, :8] = 1.0
  images += 0.1 * rng.normal(size=images.shape)
  return np.clip(images, -1, 1).astype(np.float32)


def test_info_terms_make_the_generated_codes_recoverable():
  """80 tiny steps with Cat(2) + 1 U code: L_MI (with L_VAE) teaches E to read
  G's codes back off its images, s from chance (ln 2) to far below it and c
  to a tight fit, while G keeps the codes visible in its images.

  (The discrete posterior splitting *real* data needs G to fit the data
  first: hundreds of GAN steps more than a unit test affords on a shared CPU.)
  """
  steps, n = 80, 32
  config = _tiny(**{'batch_size': n, 'codes.noise_dim': 4, 'codes.categorical': (2,),
                    'codes.num_continuous': 1, 'codes.generator_input_dim': 7,
                    'optimizer.disc_learning_rate': 1e-3})
  images = _two_kinds(steps * n, seed=0).reshape(steps, n, 16, 16, 1)

  def body(state, batch_images):
    return METHOD.train_step(state, {'image': batch_images}, config=config)

  state, history = jax.jit(lambda s, x: jax.lax.scan(body, s, x))(_init(config), images)
  mi_cat = np.asarray(history['mi_cat_loss'])
  assert np.all(np.isfinite(mi_cat))
  assert np.mean(mi_cat[:3]) > 0.8 * math.log(2), mi_cat[:3]      # chance at the start,
  assert np.mean(mi_cat[-10:]) < 0.3 * math.log(2), mi_cat[-10:]  # far below it at the end.
  # On fresh fakes (inference mode), E's posterior recovers both codes.
  layout = METHOD.code_layout(config)
  codes = latent.sample(jax.random.PRNGKey(7), layout, 256)
  out = jax.jit(METHOD.eval_outputs)(state, METHOD.generate(state, codes, layout))
  accuracy = np.mean(np.argmax(out['cat_logits'][0], -1) == codes.categorical[:, 0])
  corr = np.corrcoef(out['z'][:, 0], codes.continuous[:, 0])[0, 1]
  assert accuracy > 0.9 and corr > 0.8, (accuracy, corr)


# --- Evaluation and generation -------------------------------------------------------


def test_eval_outputs_and_generate(tiny_state):
  config, state = tiny_state
  images = _images(config, n=6)
  out = jax.jit(METHOD.eval_outputs)(state, images)
  assert set(out) == {'z', 'cat_logits', 'recon'}
  assert out['z'].shape == (6, 2 + 10) and [c.shape for c in out['cat_logits']] == [(6, 10)]
  np.testing.assert_allclose(out['z'][:, 2:], jax.nn.softmax(out['cat_logits'][0]), atol=1e-6)
  # recon = G(0, one_hot(argmax s), posterior mean of c).
  layout = METHOD.code_layout(config)
  codes = latent.Codes(noise=jnp.zeros((6, layout.noise_dim)),
                       categorical=jnp.argmax(out['cat_logits'][0], -1)[:, None].astype(jnp.int32),
                       continuous=out['z'][:, :2])
  generate = jax.jit(METHOD.generate, static_argnums=2)
  np.testing.assert_allclose(out['recon'], generate(state, codes, layout), atol=1e-6)
  # Inference mode: each row independent of the rest of the batch.
  alone = jax.jit(METHOD.eval_outputs)(state, images[2:3])
  np.testing.assert_allclose(alone['z'], out['z'][2:3], rtol=1e-5, atol=1e-6)
  fakes = generate(state, latent.sample(jax.random.PRNGKey(4), layout, 5), layout)
  assert fakes.shape == (5, 16, 16, 1) and float(jnp.max(jnp.abs(fakes))) <= 1.0


# --- (d) The real CLIs on a tiny on-disk MNIST ---------------------------------------------


@pytest.mark.slow
def test_main_evaluate_traverse_through_the_real_cli(tmp_path):
  data_dir = fake_mnist.prepare(str(tmp_path), 256, 40)
  env = dict(os.environ, TFDS_DATA_DIR=data_dir, PYTHONPATH=str(methods_test.REPO))
  workdir, out = tmp_path / 'run', tmp_path / 'figures'
  methods_test._cli(env, 'experiments.main', '--config=configs/infovaegan_mnist.py:smoke',
                    f'--workdir={workdir}')
  assert checkpointing.Checkpointer(str(workdir), read_only=True).all_steps()[-1] == 6
  methods_test._cli(env, 'experiments.evaluate', f'--workdir={workdir}')
  with open(workdir / 'eval.json') as f:
    scores = json.load(f)
  assert tuple(scores) == evaluation.CHECKPOINT_METRIC_KEYS and scores['step'] == 6
  for key in ('test_error_hungarian', 'test_error_majority', 'nmi', 'recon_mse',
              'cluster_neighbour_agreement'):
    assert isinstance(scores[key], float), key
  stdout = methods_test._cli(env, 'experiments.traverse', f'--workdir={workdir}', f'--out={out}')
  figures = ['samples_by_category.png', 'traverse_u1.png', 'traverse_u2.png',
             'reconstructions.png']
  assert sorted(os.listdir(out)) == sorted(figures)
  assert stdout.split() == [str(out / f) for f in figures]
