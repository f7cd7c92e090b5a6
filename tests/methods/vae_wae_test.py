"""Tests of the beta-VAE and WAE-MMD methods (`lgae.methods.beta_vae`, `lgae.methods.wae`)."""

import functools
import itertools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import beta_vae_dsprites, wae_dsprites
from lgae.core import config_validation, latent
from lgae.methods import beta_vae, wae
from lgae.nets import conv_vae
from lgae.objectives import mmd, vae

Z = beta_vae_dsprites.Z_DIM


def _make(method, config):
  models = method.build_models(config)
  state = jax.jit(functools.partial(method.init_state, config=config,
                                    models=models))(jax.random.PRNGKey(0))
  return models, state


def _tiny(config):
  """The smoke config on 8x8 images (3 convs; decoder 2x2x2), batch 32: cheap to compile and run."""
  config.dataset.image_size = 8
  config.model.encoder_features = (8, 8, 8)
  config.model.decoder_upsample = (2, 2, 2)
  config.model.decoder_features = (8, 8)
  config.batch_size = 32
  # Adam moves each parameter by ~lr per step: 1e-2 lets a few hundred steps
  # undo the displaced codes of the short runs below.
  config.optimizer.learning_rate = 1e-2
  return config


def _rectangles(n, size=8, seed=0):
  """n binary images in {-1, 1}: one white axis-aligned rectangle each (a toy dSprites)."""
  rng = np.random.default_rng(seed)
  images = -np.ones((n, size, size, 1), np.float32)
  for i in range(n):
    h, w = rng.integers(2, size // 2 + 2, size=2)
    y, x = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
    images[i, y:y + h, x:x + w] = 1.0
  return jnp.asarray(images)


_STEPS = {}


def _step_fn(method, config):
  """The jitted train step, one per (method, config): every test of a config shares its compile."""
  key = (method.name, config.to_json())
  if key not in _STEPS:
    _STEPS[key] = jax.jit(functools.partial(method.train_step, config=config))
  return _STEPS[key]


@pytest.fixture(scope='module')
def tiny_vae():
  config = _tiny(beta_vae_dsprites.get_config('smoke'))
  method = beta_vae.BetaVAE()
  _, state = _make(method, config)
  return method, config, state


@pytest.fixture(scope='module')
def tiny_wae():
  config = _tiny(wae_dsprites.get_config('smoke'))
  method = wae.WAE()
  _, state = _make(method, config)
  return method, config, state


_EVAL = {}


def _eval(method, state, images):
  """method.eval_outputs, jitted once per method (eager op-by-op dispatch is slow on CPU)."""
  if method.name not in _EVAL:
    _EVAL[method.name] = jax.jit(method.eval_outputs)
  return _EVAL[method.name](state, images)


_decode = jax.jit(conv_vae.decode_images)


def _messages(method, config):
  errors = []
  method.validate(config, lambda ok, message: ok or errors.append(message))
  return errors


# --- Shapes and the configs ----------------------------------------------------


@pytest.mark.parametrize('method,module,fc_out', [(beta_vae.BetaVAE(), beta_vae_dsprites, 2 * Z),
                                                  (wae.WAE(), wae_dsprites, Z)])
def test_paper_shapes_and_configs_valid(method, module, fc_out):
  config = module.get_config('paper')
  assert config.model_name == method.name
  assert _messages(method, config) == []
  assert _messages(method, module.get_config('smoke')) == []
  models = method.build_models(config)
  init = functools.partial(method.init_state, config=config, models=models)
  state = jax.eval_shape(init, jax.random.PRNGKey(0))   # allocates nothing.
  params = jax.tree.map(lambda a: a.shape, state.ae.params)
  encoder = params['encoder']
  assert [encoder[f'conv{i}']['kernel'] for i in range(6)] == [
      (4, 4, 1, 64), (4, 4, 64, 128), (4, 4, 128, 256), (4, 4, 256, 512), (4, 4, 512, 1024),
      (4, 4, 1024, 128)]
  assert encoder['fc']['kernel'] == (128, fc_out)
  assert params['decoder_input']['kernel'] == (Z, 256)
  assert params['decoder']['conv0']['kernel'] == (3, 3, 256, 512)
  assert params['decoder']['conv_out']['kernel'] == (3, 3, 64, 1)
  layout = method.code_layout(config)
  assert layout.noise_dim == Z and layout.categorical == () and layout.num_continuous == 0


@pytest.mark.parametrize('which', ['tiny_vae', 'tiny_wae'])
def test_eval_and_generate_shapes(which, request):
  method, config, state = request.getfixturevalue(which)
  images = _rectangles(5)
  out = _eval(method, state, images)
  assert out['z'].shape == (5, Z) and out['cat_logits'] == ()
  assert out['recon'].shape == (5, 8, 8, 1)
  layout = method.code_layout(config)
  codes = latent.sample(jax.random.PRNGKey(1), layout, 3)
  fakes = jax.jit(method.generate, static_argnums=2)(state, codes, layout)
  assert fakes.shape == (3, 8, 8, 1)
  assert float(jnp.max(jnp.abs(fakes))) <= 1.0
  # 'recon' decodes exactly the representation 'z' (the posterior mean / the code).
  np.testing.assert_allclose(_decode(state, out['z']), out['recon'], atol=1e-6)
  np.testing.assert_allclose(fakes, _decode(state, codes.noise), atol=1e-6)


@pytest.mark.parametrize('which', ['tiny_vae', 'tiny_wae'])
def test_decode_representation_inverts_to_the_reconstruction(which, request):
  # The representation traversal decodes eval_outputs' 'z' with
  # decode_representation: that must be the reconstruction's decoder, on z's
  # own scale (for the WAE, not the prior draws' prior_sigma * noise: the
  # state is given sigma 2 so that a scaled decode would fail).
  method, _, state = request.getfixturevalue(which)
  if which == 'tiny_wae':
    state = state.replace(prior_sigma=2.0)
  images = _rectangles(5)
  out = method.eval_outputs(state, images)
  np.testing.assert_allclose(method.decode_representation(state, out['z']), out['recon'],
                             atol=1e-6)


# --- Loss pieces -------------------------------------------------------------------


def test_gaussian_kl_hand_computed():
  mean = jnp.array([[1.0, 0.0], [0.0, 0.0]])
  log_var = jnp.array([[0.0, math.log(2.0)], [0.0, 0.0]])
  # Row 0: 0.5 * [(1 + 1 - 1 - 0) + (2 + 0 - 1 - log 2)] = 1 - 0.5 log 2; row 1: the prior.
  np.testing.assert_allclose(vae.gaussian_kl(mean, log_var),
                             [1.0 - 0.5 * math.log(2.0), 0.0], rtol=1e-6, atol=1e-7)


def test_bernoulli_reconstruction_matches_probability_form():
  key_a, key_x = jax.random.split(jax.random.PRNGKey(0))
  pre_tanh = jax.random.normal(key_a, (2, 4, 4, 1))
  recon = jnp.tanh(pre_tanh)
  images = jnp.where(jax.random.uniform(key_x, (2, 4, 4, 1)) > 0.5, 1.0, -1.0)
  p = (np.asarray(recon, np.float64) + 1.0) / 2.0   # the decoder's pixel probabilities.
  t = (np.asarray(images, np.float64) + 1.0) / 2.0
  expected = np.mean(np.sum(-(t * np.log(p) + (1 - t) * np.log(1 - p)), axis=(1, 2, 3)))
  got = vae.reconstruction_loss(images, recon, pre_tanh, 'bernoulli')
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  np.testing.assert_allclose(vae.reconstruction_loss(images, recon, pre_tanh, 'mse'),
                             np.mean(np.sum((np.asarray(images) - np.asarray(recon)) ** 2,
                                            axis=(1, 2, 3))), rtol=1e-5)


def test_captured_pre_tanh_is_the_decoders_logit(tiny_wae):
  """The Bernoulli loss reads the decoder's last conv: tanh of it must be the output."""
  _, _, state = tiny_wae

  @jax.jit
  def forward(state, images):
    (_, recon), mutated = state.ae.apply_fn(
        {'params': state.ae.params, 'batch_stats': state.ae.batch_stats}, images, train=True,
        mutable=['batch_stats'], capture_intermediates=conv_vae.is_decoder_output_conv)
    return recon, conv_vae.pre_tanh_output(mutated['intermediates'])

  recon, pre_tanh = forward(state, _rectangles(4))
  np.testing.assert_allclose(jnp.tanh(pre_tanh), recon, atol=1e-6)
  np.testing.assert_allclose(2.0 * jax.nn.sigmoid(2.0 * pre_tanh) - 1.0, recon, atol=1e-5)


def test_decoder_reads_negative_codes(tiny_wae):
  """The fc before the decoder's relu: z_0 = -1 and z_0 = -2 decode differently.

  (Without it, decoder_fc = 0, `conv.Decoder` applies relu(z) first and
  the two images are identical.)
  """
  _, config, state = tiny_wae
  assert config.model.decoder_fc > 0
  z = jnp.zeros((2, Z)).at[:, 0].set(jnp.array([-1.0, -2.0]))
  images = _decode(state, z)
  assert float(jnp.max(jnp.abs(images[0] - images[1]))) > 1e-4


# --- mmd_imq ---------------------------------------------------------------------


def test_mmd_imq_double_loop():
  x = np.array([[0.0, 0.0], [1.0, 0.5], [-0.5, 2.0], [0.3, -1.0]])
  y = np.array([[1.0, 1.0], [0.0, -0.5], [2.0, 0.0]])
  scales = (0.5, 2.0)
  k = lambda a, b: sum(c / (c + np.sum((a - b) ** 2)) for c in scales)
  n, m = len(x), len(y)
  kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  kxy = sum(k(a, b) for a, b in itertools.product(x, y)) / (n * m)
  got = mmd.mmd_imq(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), scales)
  np.testing.assert_allclose(got, kxx + kyy - 2 * kxy, rtol=1e-5)


def test_mmd_imq_same_vs_shifted_and_symmetric():
  kx, ky = jax.random.split(jax.random.PRNGKey(0))
  d = 4
  scales = mmd.imq_scales(d, 1.0)
  x = jax.random.normal(kx, (2000, d))
  y = jax.random.normal(ky, (2000, d))
  same = float(mmd.mmd_imq(x, y, scales))
  shifted = float(mmd.mmd_imq(x, y + 1.0, scales))
  assert abs(same) < 5e-3, same
  assert shifted > 0.2, shifted
  assert shifted > 100 * abs(same)
  np.testing.assert_allclose(mmd.mmd_imq(y + 1.0, x, scales), shifted, rtol=1e-5)
  # Scales are multiples of the paper's C = 2 d sigma^2.
  assert 2.0 * d * 1.0 in scales and len(scales) == len(mmd.IMQ_SCALES)


# --- The steps' randomness --------------------------------------------------------


def test_beta_vae_step_draws_eps_from_fold_in_rng_step(tiny_vae):
  method, config, state = tiny_vae
  state = state.replace(step=jnp.asarray(7, jnp.int32))
  batch = {'image': _rectangles(32)}
  step = _step_fn(method, config)
  _, m1 = step(state, batch)
  _, m2 = step(state, batch)
  _, m_next = step(state.replace(step=state.step + 1), batch)
  assert float(m1['loss']) == float(m2['loss'])   # same step: same eps.
  assert float(m1['recon_loss']) != float(m_next['recon_loss'])   # next step: other eps.
  # The loss, recomputed with eps drawn from fold_in(rng, step) by hand.
  @jax.jit
  def loss_by_hand(state, images):
    eps = jax.random.normal(jax.random.fold_in(state.rng, 7), (32, Z))
    (mean, log_var, recon), mutated = state.ae.apply_fn(
        {'params': state.ae.params, 'batch_stats': state.ae.batch_stats}, images, eps,
        train=True, mutable=['batch_stats'],
        capture_intermediates=conv_vae.is_decoder_output_conv)
    pre_tanh = conv_vae.pre_tanh_output(mutated['intermediates'])
    return (vae.reconstruction_loss(images, recon, pre_tanh, 'bernoulli')
            + config.model.beta * jnp.mean(vae.gaussian_kl(mean, log_var)))

  np.testing.assert_allclose(m1['loss'], loss_by_hand(state, batch['image']), rtol=1e-5)


def test_wae_step_draws_prior_from_fold_in_rng_step(tiny_wae):
  method, config, state = tiny_wae
  batch = {'image': _rectangles(32)}
  step = _step_fn(method, config)
  _, m1 = step(state, batch)
  _, m2 = step(state, batch)
  _, m_next = step(state.replace(step=state.step + 1), batch)
  assert float(m1['mmd']) == float(m2['mmd'])
  assert float(m1['mmd']) != float(m_next['mmd'])
  z = _eval(method, state, batch['image'])['z']   # the encoder has no BatchNorm.
  prior = jax.random.normal(jax.random.fold_in(state.rng, 0), (32, Z))
  np.testing.assert_allclose(m1['mmd'], mmd.mmd_imq(z, prior, mmd.imq_scales(Z, 1.0)),
                             rtol=1e-4, atol=1e-6)


# --- Short runs: the regulariser pulls codes displaced from the prior back ------------
#
# Each run starts from the fixture's state with the encoder's fc bias moved so
# that every code sits far from N(0, I) (mean +2, and for the beta-VAE a
# posterior variance of e^-3), then trains with the regulariser on. Run once
# with lambda_mmd = 0 / beta = 0 instead, both tests fail (the codes stay
# where they were put; checked when these tests were written: WAE MMD 5.5 ->
# 3.0 instead of -> 0.13, beta-VAE KL 49 -> 378 instead of falling).


def _displaced(state, mean_shift, log_var_shift=None):
  """The state with the encoder's fc bias shifted: z (or the posterior mean) += mean_shift."""
  params = state.ae.params
  bias = params['encoder']['fc']['bias']
  z_dim = Z
  bias = bias.at[:z_dim].add(mean_shift)
  if log_var_shift is not None:
    bias = bias.at[z_dim:].add(log_var_shift)
  params = {**params, 'encoder': {**params['encoder'],
                                  'fc': {**params['encoder']['fc'], 'bias': bias}}}
  return state.replace(ae=state.ae.replace(params=params))


def _train(method, config, state, data, steps):
  step = _step_fn(method, config)
  n, b = data.shape[0], config.batch_size
  batches = [data[i:i + b] for i in range(0, n, b)]
  history = []
  for i in range(steps):
    state, metrics = step(state, {'image': batches[i % len(batches)]})
    history.append(metrics)
  return state, [{k: float(v) for k, v in m.items()} for m in history]


def _moments(z):
  """(largest |mean| of a coordinate, per-coordinate variances) of codes [N, D]."""
  return float(jnp.max(jnp.abs(jnp.mean(z, axis=0)))), np.asarray(jnp.var(z, axis=0))


def test_wae_mmd_pulls_codes_to_the_prior(tiny_wae):
  method, config, state = tiny_wae
  state = _displaced(state, 2.0)
  data = _rectangles(512)
  prior = jax.random.normal(jax.random.PRNGKey(5), (512, Z))
  scales = mmd.imq_scales(Z, config.model.prior_sigma)
  z0 = _eval(method, state, data)['z']
  before = float(mmd.mmd_imq(z0, prior, scales))
  state, history = _train(method, config, state, data, 200)
  z = _eval(method, state, data)['z']
  after = float(mmd.mmd_imq(z, prior, scales))
  max_abs_mean, var = _moments(z)
  assert after < 0.3 * before, (before, after)
  assert np.mean([h['mmd'] for h in history[-10:]]) < 0.3 * history[0]['mmd']
  assert max_abs_mean < 0.6 < 1.5 < _moments(z0)[0], (max_abs_mean, _moments(z0)[0])
  assert np.mean(var) > 0.2, var   # spread out, not collapsed onto the prior's mean.


def test_beta_vae_kl_pulls_posteriors_to_the_prior(tiny_vae):
  method, config, state = tiny_vae
  state = _displaced(state, 2.0, -3.0)
  data = _rectangles(512)
  mean0 = _eval(method, state, data)['z']
  state, history = _train(method, config, state, data, 200)
  kl_start, kl_end = history[0]['kl'], np.mean([h['kl'] for h in history[-10:]])
  assert kl_end < 0.3 * kl_start, (kl_start, kl_end)
  mean = _eval(method, state, data)['z']
  assert _moments(mean)[0] < 0.6 < 1.5 < _moments(mean0)[0], (_moments(mean)[0],
                                                              _moments(mean0)[0])
  # The posterior variances have grown back from e^-3 towards the prior's 1.
  assert np.mean([h['posterior_var'] for h in history[-10:]]) > 0.3


# --- Validation --------------------------------------------------------------------


@pytest.mark.parametrize('method,module', [(beta_vae.BetaVAE(), beta_vae_dsprites),
                                           (wae.WAE(), wae_dsprites)])
def test_validate_rejects_codes_and_geometry(method, module):
  config = module.get_config('smoke')
  config.codes.categorical = (3,)
  config.codes.generator_input_dim = Z + 3
  assert any('config.codes.categorical' in e for e in _messages(method, config))
  config = module.get_config('smoke')
  config.codes.num_continuous = 2
  assert any('config.codes.num_continuous' in e for e in _messages(method, config))
  config = module.get_config('smoke')
  config.dataset.image_size = 32   # 6 stride-2 convs take 64x64.
  assert any('config.dataset.image_size' in e for e in _messages(method, config))


@pytest.mark.parametrize('module', [beta_vae_dsprites, wae_dsprites])
@pytest.mark.parametrize('field, value', [('schedule', 'two_stage'),
                                          ('loss.encoder_entropy_weight', 0.5)])
def test_latentgan_ae_fields_are_unknown(module, field, value):
  """The LatentGAN-AE's schedule and loss terms are not in these methods' schemas."""
  config = module.get_config('smoke')
  group, _, leaf = field.rpartition('.')
  (config[group] if group else config)[leaf] = value
  with pytest.raises(config_validation.ConfigError,
                     match=re.escape(f'config.{field}: unknown field')):
    config_validation.validate(config, check_dataset=False)


def test_validate_rejects_negative_weights():
  config = beta_vae_dsprites.get_config('smoke')
  config.model.beta = -1.0
  assert any('config.model.beta' in e for e in _messages(beta_vae.BetaVAE(), config))
  config = wae_dsprites.get_config('smoke')
  config.model.lambda_mmd = -1.0
  assert any('config.model.lambda_mmd' in e for e in _messages(wae.WAE(), config))
