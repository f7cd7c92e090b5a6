"""Tests of the unsupervised-clustering AAE (`lgae.methods.aae`, `configs/aae_mnist.py`)."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import aae_mnist
from lgae.core import config_validation, latent
from lgae.methods import aae
from lgae.objectives import gan

STYLE = 5   # configs/aae_mnist.py's style width.


def _make(config):
  method = aae.AAE()
  models = method.build_models(config)
  state = jax.jit(functools.partial(method.init_state, config=config,
                                    models=models))(jax.random.PRNGKey(0))
  return method, models, state


@pytest.fixture(scope='module', params=aae.PHASE_UPDATES)
def smoke(request):
  """The smoke config and a fresh state, under each `model.phase_updates`.

  The paper's cluster head (no BatchNorm), which the numpy forwards below
  write out; `test_cluster_logits_batch_norm` covers the configs' BatchNorm.
  """
  config = aae_mnist.get_config('smoke')
  config.model.phase_updates = request.param
  config.model.cluster_logits_norm = 'none'
  method, models, state = _make(config)
  return config, method, models, state


def _images(key, n):
  return jax.random.uniform(key, (n, 32, 32, 1), minval=-1.0, maxval=1.0)


def _np_mlp(params, x, hidden_layers):
  """The relu MLP (`lgae.nets.mlp.MLP`) written out in numpy: fc0..fc{n-1} relu, then fc_out."""
  for i in range(hidden_layers):
    x = np.maximum(x @ np.asarray(params[f'fc{i}']['kernel']) +
                   np.asarray(params[f'fc{i}']['bias']), 0.0)
  if 'fc_out' in params:
    x = x @ np.asarray(params['fc_out']['kernel']) + np.asarray(params['fc_out']['bias'])
  return x


def _np_dense(params, x):
  return x @ np.asarray(params['kernel']) + np.asarray(params['bias'])


def _np_softmax(logits):
  e = np.exp(logits - logits.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def _np_decode(params, code):
  return np.tanh(_np_mlp(params['decoder'], code, 2)).reshape(-1, 32, 32, 1)


@pytest.mark.parametrize('variant,width,k', [('k16', 3000, 16), ('smoke', 32, 16),
                                             ('k32', 3000, 32)])
def test_network_shapes(variant, width, k):
  config = aae_mnist.get_config(variant)
  method = aae.AAE()
  models = method.build_models(config)
  init = functools.partial(method.init_state, config=config, models=models)
  state = jax.eval_shape(init, jax.random.PRNGKey(0))   # allocates nothing (k16 is 42M params).
  shape = lambda tree: jax.tree.map(lambda a: a.shape, tree)
  ae = shape(state.ae.params)
  assert ae['trunk']['fc0']['kernel'] == (32 * 32, width)
  assert ae['trunk']['fc1']['kernel'] == (width, width)
  assert 'fc_out' not in ae['trunk']
  assert ae['cat_head']['kernel'] == (width, k)
  assert ae['style_head']['kernel'] == (width, STYLE)
  assert ae['decoder']['fc0']['kernel'] == (STYLE + k, width)
  assert ae['decoder']['fc1']['kernel'] == (width, width)
  assert ae['decoder']['fc_out']['kernel'] == (width, 32 * 32)
  for disc, in_dim in ((state.disc_cat, k), (state.disc_style, STYLE)):
    mlp = shape(disc.params)['mlp']
    assert mlp['fc0']['kernel'] == (in_dim, width)
    assert mlp['fc1']['kernel'] == (width, width)
    assert mlp['fc_out']['kernel'] == (width, 1)
  assert jax.tree.map(lambda a: a.shape, state.ae.batch_stats) == {
      'cat_norm': {'mean': (k,), 'var': (k,)}}   # the configs' BatchNorm on the cluster logits.
  assert state.step.shape == () and state.step.dtype == jnp.int32
  assert state.rng.shape == (2,) and state.rng.dtype == jnp.uint32
  # Outputs of every network, abstractly.
  images = jax.ShapeDtypeStruct((3, 32, 32, 1), jnp.float32)
  out = jax.eval_shape(method.eval_outputs, state, images)
  assert out['z'].shape == (3, STYLE + k)
  assert len(out['cat_logits']) == 1 and out['cat_logits'][0].shape == (3, k)
  assert out['recon'].shape == (3, 32, 32, 1)
  layout = method.code_layout(config)
  assert layout == latent.CodeLayout(STYLE, (k,), 0)
  assert layout.input_dim == config.codes.generator_input_dim
  codes = jax.eval_shape(functools.partial(latent.sample, layout=layout, batch_size=3),
                         jax.random.PRNGKey(0))
  generate = functools.partial(method.generate, layout=layout)
  assert jax.eval_shape(generate, state, codes).shape == (3, 32, 32, 1)
  for disc, in_dim in ((state.disc_cat, k), (state.disc_style, STYLE)):
    logits = jax.eval_shape(lambda d, x: d.apply_fn({'params': d.params}, x), disc,
                            jax.ShapeDtypeStruct((3, in_dim), jnp.float32))
    assert logits.shape == (3,)


def test_generate_decodes_style_then_one_hot(smoke):
  config, method, _, state = smoke
  layout = method.code_layout(config)
  codes = latent.sample(jax.random.PRNGKey(3), layout, 8)
  got = np.asarray(method.generate(state, codes, layout))
  one_hot = np.eye(16, dtype=np.float32)[np.asarray(codes.categorical[:, 0])]
  by_hand = _np_decode(state.ae.params, np.concatenate([np.asarray(codes.noise), one_hot], 1))
  np.testing.assert_allclose(got, by_hand, atol=1e-5)
  assert got.min() >= -1.0 and got.max() <= 1.0
  # The order matters: [one-hot, style] (misread) decodes differently.
  swapped = np.concatenate([one_hot[:, :STYLE], np.asarray(codes.noise), one_hot[:, STYLE:]], 1)
  assert not np.allclose(got, _np_decode(state.ae.params, swapped), atol=1e-3)


def test_reconstruction_decodes_softmax_not_one_hot(smoke):
  _, method, _, state = smoke
  images = _images(jax.random.PRNGKey(4), 8)
  out = method.eval_outputs(state, images)
  p = state.ae.params
  h = _np_mlp(p['trunk'], np.asarray(images).reshape(8, -1), 2)
  style, logits = _np_dense(p['style_head'], h), _np_dense(p['cat_head'], h)
  np.testing.assert_allclose(out['cat_logits'][0], logits, atol=1e-5)
  soft = _np_softmax(logits)
  np.testing.assert_allclose(out['z'], np.concatenate([style, soft], 1), atol=1e-5)
  np.testing.assert_allclose(out['recon'], _np_decode(p, np.concatenate([style, soft], 1)),
                             atol=1e-5)
  hard = np.eye(16, dtype=np.float32)[logits.argmax(1)]
  assert not np.allclose(out['recon'], _np_decode(p, np.concatenate([style, hard], 1)),
                         atol=1e-3)


def test_eval_outputs_keys_and_shapes(smoke):
  _, method, _, state = smoke
  out = method.eval_outputs(state, _images(jax.random.PRNGKey(5), 6))
  assert set(out) == {'z', 'cat_logits', 'recon'}
  assert out['z'].shape == (6, STYLE + 16)
  assert isinstance(out['cat_logits'], tuple) and len(out['cat_logits']) == 1
  assert out['cat_logits'][0].shape == (6, 16)
  assert out['recon'].shape == (6, 32, 32, 1)
  # The y part of z is a distribution over the K clusters.
  np.testing.assert_allclose(np.asarray(out['z'][:, STYLE:]).sum(1), 1.0, atol=1e-5)


def test_train_step_is_deterministic_and_updates_every_network(smoke):
  config, method, _, state = smoke
  step = jax.jit(functools.partial(method.train_step, config=config))
  batch = {'image': _images(jax.random.PRNGKey(6), config.batch_size)}
  new_a, metrics_a = step(state, batch)
  new_b, metrics_b = step(state, batch)
  jax.tree.map(np.testing.assert_array_equal, new_a, new_b)
  jax.tree.map(np.testing.assert_array_equal, metrics_a, metrics_b)
  assert int(new_a.step) == 1
  np.testing.assert_array_equal(new_a.rng, state.rng)
  changed = lambda old, new: any(
      not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new)))
  for part in ('trunk', 'cat_head', 'style_head', 'decoder'):
    assert changed(state.ae.params[part], new_a.ae.params[part]), part
  assert changed(state.disc_cat.params, new_a.disc_cat.params)
  assert changed(state.disc_style.params, new_a.disc_style.params)
  expected = {'recon_loss', 'd_cat_loss', 'd_style_loss', 'g_cat_loss', 'g_style_loss',
              'd_cat_real_prob', 'd_cat_fake_prob'}
  assert expected <= set(metrics_a)
  for name, value in metrics_a.items():
    assert value.shape == () and np.isfinite(value), name
  # The next step draws differently (fold_in(rng, step)): same batch, other targets/samples.
  _, metrics_next = step(new_a, batch)
  assert float(metrics_next['d_cat_loss']) != float(metrics_a['d_cat_loss'])


def test_separate_phases_by_hand():
  """'separate': Adam on the MSE, then D_cat/D_style on the *moved* encoder, then the encoder
  against the updated adversaries with its own Adam moments; each written out with optax."""
  config = aae_mnist.get_config('smoke')
  assert config.model.phase_updates == 'separate'   # the default.
  config.model.cluster_logits_norm = 'none'   # the paper's head: plain forwards below.
  method, _, state = _make(config)
  images = _images(jax.random.PRNGKey(12), config.batch_size)
  new, metrics = jax.jit(functools.partial(method.train_step, config=config))(
      state, {'image': images})
  apply = lambda params, *a, **k: state.ae.apply_fn({'params': params}, *a, **k)
  tx = state.ae.tx

  # (1) Reconstruction: one Adam step of encoder+decoder on the MSE alone.
  mse = lambda params: jnp.mean((apply(params, images)[2] - images) ** 2)
  updates, _ = tx.update(jax.grad(mse)(state.ae.params), state.ae.opt_state, state.ae.params)
  params1 = optax.apply_updates(state.ae.params, updates)
  np.testing.assert_allclose(metrics['recon_loss'], mse(state.ae.params), rtol=1e-5)

  # (2) The adversaries see the encoder after (1), with the step's prior samples.
  layout = method.code_layout(config)
  style1, logits1 = apply(params1, images, method=aae.AAEAutoencoder.encode)
  k_prior = jax.random.split(jax.random.fold_in(state.rng, 0), 5)[0]
  prior = latent.sample(k_prior, layout, config.batch_size)
  ones, zeros = jnp.ones(config.batch_size), jnp.zeros(config.batch_size)   # no label noise.
  cat, *_ = gan.discriminator_update(state.disc_cat, jax.nn.one_hot(prior.categorical[:, 0], 16),
                                     jax.nn.softmax(logits1), ones, zeros)
  style_disc, *_ = gan.discriminator_update(state.disc_style, prior.noise, style1, ones, zeros)
  for want, got in ((cat.params, new.disc_cat.params), (style_disc.params, new.disc_style.params)):
    jax.tree.map(functools.partial(np.testing.assert_allclose, atol=1e-5), got, want)

  # (3) The encoder against the updated adversaries, from the regularisation
  # phase's own (fresh) Adam state; the decoder stays where (1) put it.
  def fool(params):
    style, logits = apply(params, images, method=aae.AAEAutoencoder.encode)
    d = lambda disc, x: disc.apply_fn({'params': disc.params}, x)
    return (jnp.mean(jax.nn.softplus(-d(cat, jax.nn.softmax(logits)))) +
            jnp.mean(jax.nn.softplus(-d(style_disc, style))))

  updates, _ = tx.update(jax.grad(fool)(params1), tx.init(state.ae.params), params1)
  params2 = optax.apply_updates(params1, updates)
  jax.tree.map(functools.partial(np.testing.assert_allclose, atol=2e-5), new.ae.params, params2)
  # (jit vs eager rounding only: an Adam update would move it by ~lr = 1e-4.)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=0, atol=1e-7),
               new.ae.params['decoder'], params1['decoder'])
  # The two phases keep separate moments: the reconstruction's opt_state and
  # reg_opt_state both moved, and differently.
  assert new.reg_opt_state is not None
  mu = lambda opt: jax.tree.leaves(opt[0].mu)
  assert not all(np.allclose(a, b) for a, b in zip(mu(new.ae.opt_state), mu(new.reg_opt_state)))


def test_combined_state_has_no_regularisation_optimiser():
  # Under 'combined' the state pytree has exactly the leaves it had before
  # phase_updates existed, so those checkpoints restore unchanged.
  config = aae_mnist.get_config('smoke')
  config.model.phase_updates = 'combined'
  _, _, combined = _make(config)
  _, _, separate = _make(aae_mnist.get_config('smoke'))
  assert combined.reg_opt_state is None
  extra = len(jax.tree.leaves(separate)) - len(jax.tree.leaves(combined))
  assert extra == len(jax.tree.leaves(separate.reg_opt_state)) > 0


def test_cluster_logits_batch_norm():
  config = aae_mnist.get_config('smoke')
  config.model.cluster_logits_norm = 'batch_norm'
  method, _, state = _make(config)
  assert set(state.ae.batch_stats) == {'cat_norm'}
  assert set(state.ae.params['cat_head']) == {'kernel'}   # no bias before the BatchNorm.
  images = _images(jax.random.PRNGKey(13), config.batch_size)
  new, _ = jax.jit(functools.partial(method.train_step, config=config))(state, {'image': images})
  # The step moves the running averages; evaluation reads them (not the batch's statistics).
  mean = lambda st: np.asarray(st.ae.batch_stats['cat_norm']['mean'])
  assert not np.allclose(mean(new), mean(state))
  apply = lambda train: new.ae.apply_fn(
      {'params': new.ae.params, 'batch_stats': new.ae.batch_stats}, images, train=train,
      method=aae.AAEAutoencoder.encode, mutable=['batch_stats'] if train else False)
  (_, train_logits), _ = apply(True)
  _, eval_logits = apply(False)
  np.testing.assert_allclose(method.eval_outputs(new, images)['cat_logits'][0], eval_logits,
                             atol=1e-5)
  assert not np.allclose(train_logits, eval_logits, atol=1e-3)
  # In training every cluster's logit has the batch mean of its BatchNorm shift: no
  # cluster can rise on every row at once.
  np.testing.assert_allclose(np.asarray(train_logits).mean(0),
                             new.ae.params['cat_norm']['bias'], atol=1e-4)
  # The paper's head (the model_config default) has no BatchNorm at all; the
  # MNIST configs turn it on.
  assert aae.AAE().model_config().cluster_logits_norm == 'none'
  assert aae_mnist.get_config('k16').model.cluster_logits_norm == 'batch_norm'
  paper = aae_mnist.get_config('smoke')
  paper.model.cluster_logits_norm = 'none'
  assert _make(paper)[2].ae.batch_stats == {}


def test_adversarial_weight_ramp():
  config = aae_mnist.get_config('smoke')
  config.model.adversarial_weight = 2.0
  weight = lambda step: float(aae.adversarial_weight(config, jnp.asarray(step, jnp.int32)))
  assert weight(0) == weight(10**6) == 2.0   # no ramp by default.
  config.model.adversarial_warmup_steps = 100
  assert [weight(s) for s in (0, 25, 100, 500)] == [0.0, 0.5, 2.0, 2.0]


def test_decoder_gets_no_gradient_from_the_adversarial_term(smoke):
  config, method, _, state = smoke
  batch = {'image': _images(jax.random.PRNGKey(7), config.batch_size)}
  off = config.copy_and_resolve_references()
  off.model.adversarial_weight = 0.0
  with_adv, _ = jax.jit(functools.partial(method.train_step, config=config))(state, batch)
  without, _ = jax.jit(functools.partial(method.train_step, config=off))(state, batch)
  jax.tree.map(np.testing.assert_array_equal, with_adv.ae.params['decoder'],
               without.ae.params['decoder'])
  assert not np.array_equal(with_adv.ae.params['style_head']['kernel'],
                            without.ae.params['style_head']['kernel'])
  # The discriminators' updates do not depend on the encoder's adversarial term either.
  jax.tree.map(np.testing.assert_array_equal, with_adv.disc_style.params,
               without.disc_style.params)


def _short_run(adversarial_weight, steps=300):
  """Smoke widths, lr 1e-3, on 8 noisy prototype images; returns (z stats, late metrics)."""
  config = aae_mnist.get_config('smoke')
  config.model.cluster_logits_norm = 'none'   # the paper's head, which these criteria describe.
  config.model.adversarial_weight = adversarial_weight
  config.optimizer.learning_rate = 1e-3
  method, _, state = _make(config)
  step = jax.jit(functools.partial(method.train_step, config=config))
  k_proto, k_label, k_noise = jax.random.split(jax.random.PRNGKey(11), 3)
  prototypes = _images(k_proto, 8)
  labels = jax.random.randint(k_label, (1024,), 0, 8)
  data = jnp.clip(prototypes[labels] + 0.3 * jax.random.normal(k_noise, (1024, 32, 32, 1)),
                  -1.0, 1.0)
  late = []
  for i in range(steps):
    start = (i * config.batch_size) % 1024
    state, metrics = step(state, {'image': data[start:start + config.batch_size]})
    if i >= steps - 50:
      late.append(metrics)
  late = {k: float(np.mean([m[k] for m in late])) for k in late[0]}
  out = method.eval_outputs(state, data[:512])
  style = np.asarray(out['z'][:, :STYLE])
  confidence = float(np.asarray(out['z'][:, STYLE:]).max(1).mean())
  return {'style_std': float(style.std(0).mean()),
          'style_mean': float(np.abs(style.mean(0)).mean()), 'confidence': confidence}, late


def _regularised(stats, late):
  """The signs that the two adversarial games act on the encoder."""
  return (abs(late['d_style_real_prob'] - late['d_style_fake_prob']) < 0.15 and
          0.7 < stats['style_std'] < 1.4 and stats['style_mean'] < 0.5 and
          late['d_cat_fake_prob'] > 0.25 and stats['confidence'] > 0.85)


def test_adversarial_regularisation_matches_the_priors():
  stats, late = _short_run(1.0)
  # D_style cannot tell the encoder's z from N(0, I); z has ~unit std and
  # ~zero mean; y is pulled towards one-hot (the Cat prior's samples).
  assert abs(late['d_style_real_prob'] - late['d_style_fake_prob']) < 0.15, late
  assert 0.7 < stats['style_std'] < 1.4, stats
  assert stats['style_mean'] < 0.5, stats
  assert late['d_cat_fake_prob'] > 0.25, late
  assert stats['confidence'] > 0.85, stats
  assert late['recon_loss'] < 0.25, late


def test_without_the_generator_term_the_discriminators_win():
  # The control for the test above: the same run with the encoder's
  # adversarial term off fails its criteria (D_style and D_cat win, z drifts).
  stats, late = _short_run(0.0)
  assert not _regularised(stats, late), (stats, late)
  assert late['d_style_fake_prob'] < 0.3, late


def test_validate_accepts_the_configs():
  for variant in ('k16', 'k32', 'smoke'):
    errors = []
    aae.AAE().validate(aae_mnist.get_config(variant),
                       lambda ok, message: errors.append(message) if not ok else None)
    assert not errors, (variant, errors)


@pytest.mark.parametrize('field,value,names', [
    ('codes.categorical', (10, 10), 'config.codes.categorical'),
    ('codes.num_continuous', 1, 'config.codes.num_continuous'),
    ('codes.noise_dim', 0, 'config.codes.noise_dim'),
    ('model.discriminator_hidden', (32, 0), 'config.model.discriminator_hidden'),
    ('model.phase_updates', 'alternate', 'config.model.phase_updates'),
    ('model.cluster_logits_norm', 'layer_norm', 'config.model.cluster_logits_norm'),
    ('model.adversarial_warmup_steps', -1, 'config.model.adversarial_warmup_steps'),
])
def test_validate_rejects(field, value, names):
  config = aae_mnist.get_config('smoke')
  group, _, leaf = field.rpartition('.')
  (config[group] if group else config)[leaf] = value
  errors = []
  aae.AAE().validate(config, lambda ok, message: errors.append(message) if not ok else None)
  assert errors, field
  assert all(m.startswith(names) for m in errors), errors
  assert any(f'{names}={value!r}' in m or f'{names}={value}' in m for m in errors), errors


@pytest.mark.parametrize('field,value', [('schedule', 'two_stage'),
                                         ('loss.encoder_adversarial_weight', 0.5)])
def test_latentgan_ae_fields_are_unknown(field, value):
  """The LatentGAN-AE's schedule and loss terms are not in the AAE's schema."""
  config = aae_mnist.get_config('smoke')
  group, _, leaf = field.rpartition('.')
  with config.unlocked():
    (config[group] if group else config)[leaf] = value
  with pytest.raises(config_validation.ConfigError,
                     match=re.escape(f'config.{field}: unknown field')):
    config_validation.validate(config, check_dataset=False)


def test_config_variants():
  assert aae_mnist.get_config().codes.categorical == (16,)
  assert aae_mnist.get_config('k32').codes.categorical == (32,)
  smoke_config = aae_mnist.get_config('smoke')
  assert smoke_config.model_name == aae.AAE.name == 'aae'
  assert smoke_config.num_train_steps == 6 and smoke_config.batch_size == 16
  assert set(smoke_config.model) == set(aae.AAE().model_config())
  with pytest.raises(ValueError, match='variant'):
    aae_mnist.get_config('k10')
