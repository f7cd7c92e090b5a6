"""Tests of the AAE with a learned prior (`lgae.methods.cg_aae`, `configs/cg_aae_mnist.py`)."""

import functools
import json
import math
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state

from configs import cg_aae_mnist
from lgae import methods
from lgae.core import checkpointing, config_validation, latent
from lgae.evaluation import run as evaluation
from lgae.core import state as state_lib
from lgae.methods import cg_aae
from tests import fake_mnist

METHOD = cg_aae.CGAAE()
REPO = pathlib.Path(__file__).resolve().parents[2]


def _config(variant='smoke', **overrides):
  config = cg_aae_mnist.get_config(variant)
  for field, value in overrides.items():
    group, _, leaf = field.rpartition('.')
    (config[group] if group else config)[leaf] = value
  return config


def _tiny(**overrides):
  """The smoke widths on 16x16 images, fewer blocks in Enc, Dec and D_I: quick compiles."""
  return _config(**{'dataset.image_size': 16, 'model.encoder_block_features': (4, 8),
                    'model.encoder_block_strides': (1, 2),
                    'model.decoder_block_features': (8, 4), 'model.image_disc_features': (4, 8),
                    **overrides})


def _init(config):
  models = METHOD.build_models(config)
  return jax.jit(functools.partial(METHOD.init_state, config=config,
                                   models=models))(jax.random.PRNGKey(0))


def _images(config, n=None, seed=0):
  size = config.dataset.image_size
  rng = np.random.default_rng(seed)
  return rng.uniform(-1, 1, (n or config.batch_size, size, size, 1)).astype(np.float32)


def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# --- (a) The paper's networks: shapes and parameter counts ------------------------


def test_paper_parameter_counts_and_shapes():
  """Tables A.1-A.3 counted by hand (32x32 input, code 100; no bias before a BatchNorm or in
  the residual blocks' 1x1 skip projections)."""
  config = _config('paper')
  models = METHOD.build_models(config)
  state = jax.eval_shape(functools.partial(METHOD.init_state, config=config, models=models),
                         jax.random.PRNGKey(0))
  conv3 = lambda i, o: 9 * i * o + o
  encoder = (conv3(1, 64)                                            # stem c3-o64-s2
             + 2 * conv3(64, 64)                                     # res 64 (identity skip)
             + conv3(64, 128) + conv3(128, 128) + 64 * 128           # res 128-s2 (+ 1x1 skip)
             + conv3(128, 256) + conv3(256, 256) + 128 * 256         # res 256-s2
             + conv3(256, 512) + conv3(512, 512) + 256 * 512         # res 512-s2
             + 512 * 200 + 2 * 200                                   # fc-o200, BN
             + 200 * 100 + 100)                                      # fc-o100
  up = lambda i, o: 16 * i * o + o + conv3(o, o) + i * o             # upconv4, conv3, 1x1 skip
  decoder = (100 * 4 * 4 * 512 + 2 * 512                             # "upconv4 512 s1", BN
             + up(512, 256) + up(256, 128) + up(128, 64)
             + 9 * 64 * 1 + 1)                                       # c3-o1-tanh
  code_generator = 100 * 200 + 2 * 200 + 200 * 100 + 2 * 100         # fc-bn-r, fc-bn
  disc_code = 100 * 1000 + 1000 + 1000 * 500 + 500 + 500 * 200 + 200 + 200 + 1
  disc_image = (16 * 1 * 64 + 64                                     # c4-o64 (+ bias, no BN)
                + 16 * 64 * 128 + 2 * 128 + 16 * 128 * 256 + 2 * 256  # c4-o128-bn, c4-o256-bn
                + 4 * 4 * 256 + 1 + 4 * 4 * 256 * 10 + 10)           # D_I head, Q head
  assert (encoder, decoder, code_generator, disc_code, disc_image) == (
      5_016_084, 4_520_385, 40_600, 701_901, 702_283)
  count = state_lib.count_params
  assert count(state.enc.params) == encoder
  assert count(state.dec.params) == decoder
  assert count(state.cg.params) == code_generator
  assert count(state.disc_code.params) == disc_code
  assert count(state.disc_image.params) == disc_image
  assert count(state.enc.batch_stats) == 2 * 200
  assert count(state.dec.batch_stats) == 2 * 512
  assert count(state.cg.batch_stats) == 2 * (200 + 100)
  assert count(state.disc_image.batch_stats) == 2 * (128 + 256)
  assert state.step.shape == () and state.step.dtype == jnp.int32
  assert state.rng.shape == (2,) and state.rng.dtype == jnp.uint32

  images = jax.ShapeDtypeStruct((3, 32, 32, 1), jnp.float32)
  out = jax.eval_shape(METHOD.eval_outputs, state, images)
  assert out['z'].shape == (3, 100) and out['recon'].shape == (3, 32, 32, 1)
  assert len(out['cat_logits']) == 1 and out['cat_logits'][0].shape == (3, 10)
  assert jax.eval_shape(cg_aae.perceptual_features, state.disc_image, images).shape == (
      3, 4, 4, 256)
  # The encoder's last block leaves a 2x2x512 map (stem and three blocks of stride 2).
  enc_vars = {'params': state.enc.params, 'batch_stats': state.enc.batch_stats}
  _, inter = jax.eval_shape(lambda v, x: models.encoder.apply(
      v, x, train=False, capture_intermediates=lambda m, _: m.name == 'block3'), enc_vars, images)
  assert inter['intermediates']['block3']['__call__'][0].shape == (3, 2, 2, 512)
  layout = METHOD.code_layout(config)
  assert layout == latent.CodeLayout(90, (10,), 0) and layout.input_dim == 100
  codes = jax.eval_shape(functools.partial(latent.sample, layout=layout, batch_size=3),
                         jax.random.PRNGKey(0))
  assert jax.eval_shape(functools.partial(METHOD.generate, layout=layout), state,
                        codes).shape == (3, 32, 32, 1)
  assert jax.eval_shape(functools.partial(METHOD.generated_latents, layout=layout), state,
                        codes).shape == (3, 100)


# --- (b) The step is SGD on the hand-written losses ---------------------------------


def _softplus(x):
  return jnp.logaddexp(x, 0.0)


def _with_sgd(state, models, lr):
  def sgd(net, module):
    return state_lib.AutoencoderState.create(apply_fn=module.apply, params=net.params,
                                             tx=optax.sgd(lr), batch_stats=net.batch_stats)
  return state.replace(
      enc=sgd(state.enc, models.encoder), dec=sgd(state.dec, models.decoder),
      cg=sgd(state.cg, models.code_generator), disc_image=sgd(state.disc_image, models.disc_image),
      disc_code=train_state.TrainState.create(apply_fn=models.disc_code.apply,
                                              params=state.disc_code.params, tx=optax.sgd(lr)))


def test_train_step_is_sgd_on_the_hand_written_losses():
  """With plain SGD every network's update is -lr x the gradient of the paper's losses.

  Written out here from the module docstring / Algorithm 1, independently of
  the step's VJP plumbing: BCE as softplus, Q's CE as logsumexp - logit[s],
  L_rec as the mean squared difference of D_I's inference-mode last conv
  activations; Enc, Dec, CG, D_I in train mode; the generator sides through
  the freshly updated D_C and D_I/Q; Dec's step the sum of lambda grad L_rec
  and grad(L^I_GAN + lambda_I L_I), all at the step's starting parameters.
  """
  lr, lam, lam_i, w_code = 0.05, 0.6, 0.7, 1.3
  config = _tiny(**{'batch_size': 8, 'model.rec_decoder_weight': lam,
                    'loss.lambda_disc': lam_i, 'model.code_adversarial_weight': w_code})
  models = METHOD.build_models(config)
  state = _with_sgd(_init(config), models, lr)
  images = jnp.asarray(_images(config, seed=3))
  after, metrics = jax.jit(functools.partial(METHOD.train_step, config=config))(
      state, {'image': images})
  expected = jax.jit(functools.partial(_hand_written_sgd_step, models=models, config=config,
                                       lr=lr, lam=lam, lam_i=lam_i, w_code=w_code))(state, images)
  close = functools.partial(np.testing.assert_allclose, rtol=2e-4, atol=2e-6)
  for name, value in expected['metrics'].items():
    close(metrics[name], value, err_msg=name)
  for net in ('enc', 'dec', 'cg', 'disc_image'):
    jax.tree.map(close, getattr(after, net).params, expected[net]['params'])
    jax.tree.map(close, getattr(after, net).batch_stats, expected[net]['batch_stats'])
  jax.tree.map(close, after.disc_code.params, expected['disc_code']['params'])
  assert int(after.step) == 1
  np.testing.assert_array_equal(after.rng, state.rng)
  # Q starts near chance: L_I ~ ln 10.
  assert abs(float(metrics['mi_cat_loss']) - math.log(10)) < 0.7


def _hand_written_sgd_step(state, images, *, models, config, lr, lam, lam_i, w_code):
  """The expected parameters, statistics and losses after one SGD step (see the test above)."""
  layout = METHOD.code_layout(config)
  k_aae, k_prior = jax.random.split(jax.random.fold_in(state.rng, 0))
  codes_a = latent.sample(jax.random.split(k_aae, 3)[0], layout, 8)
  codes_p = latent.sample(jax.random.split(k_prior, 3)[0], layout, 8)

  def fwd(module, params, stats, x):
    out, mutated = module.apply({'params': params, 'batch_stats': stats}, x, train=True,
                                mutable=['batch_stats'])
    return out, mutated['batch_stats']

  def ce(logits, s):
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1)
                    - jnp.take_along_axis(logits, s[:, None], axis=1)[:, 0])

  sgd = lambda params, grads: jax.tree.map(lambda p, g: p - lr * g, params, grads)
  d_c = lambda params, code: models.disc_code.apply({'params': params}, code)
  features = lambda x: models.disc_image.apply(
      {'params': state.disc_image.params, 'batch_stats': state.disc_image.batch_stats}, x,
      train=False)['features']

  # AAE phase: D_C on CG's codes (real) vs Enc(x) (fake), CG and D_I fixed.
  prior_code, _ = fwd(models.code_generator, state.cg.params, state.cg.batch_stats,
                      latent.generator_input(codes_a, layout))
  code, enc_stats = fwd(models.encoder, state.enc.params, state.enc.batch_stats, images)

  def d_code_loss_fn(params):
    return jnp.mean(_softplus(-d_c(params, prior_code))) + jnp.mean(_softplus(d_c(params, code)))

  d_code_loss, grads = jax.value_and_grad(d_code_loss_fn)(state.disc_code.params)
  dc_params = sgd(state.disc_code.params, grads)

  def ae_terms(enc_params, dec_params):
    z, _ = fwd(models.encoder, enc_params, state.enc.batch_stats, images)
    recon, stats = fwd(models.decoder, dec_params, state.dec.batch_stats, z)
    l_code = jnp.mean(_softplus(-d_c(dc_params, z)))
    l_rec = jnp.mean((features(recon) - features(images)) ** 2)
    return l_code, l_rec, stats

  l_code, l_rec, dec_stats_aae = ae_terms(state.enc.params, state.dec.params)
  enc_grads = jax.grad(lambda p: (lambda c, r, _: w_code * c + r)(
      *ae_terms(p, state.dec.params)))(state.enc.params)
  dec_grads_aae = jax.grad(lambda p: lam * ae_terms(state.enc.params, p)[1])(state.dec.params)

  # Prior improvement phase: D_I/Q on x vs Dec(CG(z, s)), then CG and Dec through it.
  def generate(cg_params, dec_params):
    zc, cg_stats = fwd(models.code_generator, cg_params, state.cg.batch_stats,
                       latent.generator_input(codes_p, layout))
    fake, stats = fwd(models.decoder, dec_params, dec_stats_aae, zc)
    return fake, cg_stats, stats

  fake, cg_stats, dec_stats = generate(state.cg.params, state.dec.params)
  s = codes_p.categorical[:, 0]

  def d_image_loss_fn(params):
    real_out, stats = fwd(models.disc_image, params, state.disc_image.batch_stats, images)
    fake_out, stats = fwd(models.disc_image, params, stats, fake)
    d_loss = jnp.mean(_softplus(-real_out['logit'])) + jnp.mean(_softplus(fake_out['logit']))
    mi = ce(fake_out['cat_logits'][0], s)
    return d_loss + lam_i * mi, (d_loss, mi, stats)

  (_, (d_image_loss, mi, di_stats)), grads = jax.value_and_grad(
      d_image_loss_fn, has_aux=True)(state.disc_image.params)
  di_params = sgd(state.disc_image.params, grads)

  def g_image_terms(cg_params, dec_params):
    out, _ = fwd(models.disc_image, di_params, di_stats, generate(cg_params, dec_params)[0])
    return jnp.mean(_softplus(-out['logit'])), ce(out['cat_logits'][0], s)

  g_image_loss, _ = g_image_terms(state.cg.params, state.dec.params)
  cg_grads, dec_grads_prior = jax.grad(lambda c, d: (lambda g, q: g + lam_i * q)(
      *g_image_terms(c, d)), argnums=(0, 1))(state.cg.params, state.dec.params)

  return {
      'metrics': {'d_code_loss': d_code_loss, 'g_code_loss': l_code, 'rec_loss': l_rec,
                  'd_image_loss': d_image_loss, 'mi_cat_loss': mi, 'g_image_loss': g_image_loss},
      'disc_code': {'params': dc_params},
      'enc': {'params': sgd(state.enc.params, enc_grads), 'batch_stats': enc_stats},
      'dec': {'params': sgd(state.dec.params,
                            jax.tree.map(jnp.add, dec_grads_aae, dec_grads_prior)),
              'batch_stats': dec_stats},
      'cg': {'params': sgd(state.cg.params, cg_grads), 'batch_stats': cg_stats},
      'disc_image': {'params': di_params, 'batch_stats': di_stats},
  }


def test_alternate_schedule_moves_one_phase_per_step():
  """'alternate': even steps move Enc, Dec, D_C only; odd steps CG, Dec, D_I/Q only."""
  config = _tiny(**{'batch_size': 8, 'model.phase_schedule': 'alternate'})
  state = _init(config)
  step = jax.jit(functools.partial(METHOD.train_step, config=config))
  batch = {'image': _images(config)}
  first, m0 = step(state, batch)
  second, m1 = step(first, batch)
  for net, moved in (('enc', True), ('dec', True), ('disc_code', True), ('cg', False),
                     ('disc_image', False)):
    assert _changed(getattr(state, net), getattr(first, net)) == moved, net
  for net, moved in (('enc', False), ('dec', True), ('disc_code', False), ('cg', True),
                     ('disc_image', True)):
    assert _changed(getattr(first, net), getattr(second, net)) == moved, net
  assert set(m0) == set(m1) == set(cg_aae.AAE_METRICS + cg_aae.PRIOR_METRICS)
  assert float(m0['d_image_loss']) == 0 and float(m0['d_code_loss']) > 0
  assert float(m1['d_code_loss']) == 0 and float(m1['d_image_loss']) > 0


# --- (c) The mechanism: Q learns s from Dec(CG(z, s)) --------------------------------


def test_mutual_information_term_makes_q_recover_s():
  """200 tiny steps (16x16, 4 noise dims, lr 1e-3, noisy prototypes as data, one scan).

  Q's head is trained by L_I alone, so its accuracy on Dec(CG(z, s)) rising
  from chance to > 0.8 is the MI term acting (and Dec(CG) carrying s).
  """
  steps = 200
  config = _tiny(**{'batch_size': 32, 'codes.noise_dim': 4, 'codes.generator_input_dim': 14,
                    'optimizer.learning_rate': 1e-3})
  state = _init(config)
  layout = METHOD.code_layout(config)
  codes = latent.sample(jax.random.PRNGKey(7), layout, 500)

  def q_accuracy(state):
    # On fresh generated images, in inference mode, as evaluation generates them.
    q = METHOD.eval_outputs(state, METHOD.generate(state, codes, layout))['cat_logits'][0]
    return float(np.mean(np.argmax(q, -1) == np.asarray(codes.categorical[:, 0])))

  at_init = q_accuracy(state)
  rng = np.random.default_rng(0)
  prototypes = rng.uniform(-1, 1, (4, 16, 16, 1)).astype(np.float32)
  images = prototypes[rng.integers(0, 4, (steps, 32))] + 0.1 * rng.normal(
      size=(steps, 32, 16, 16, 1))
  images = np.clip(images, -1, 1).astype(np.float32)

  def body(state, batch_images):
    state, metrics = METHOD.train_step(state, {'image': batch_images}, config=config)
    return state, metrics['mi_cat_loss']

  state, history = jax.jit(lambda s, x: jax.lax.scan(body, s, x))(state, images)
  history = np.asarray(history)
  assert np.all(np.isfinite(history))
  assert np.mean(history[:10]) > 0.8 * math.log(10), history[:10]   # chance at the start,
  assert np.mean(history[-30:]) < 0.4 * math.log(10), history[-30:]  # far below it at the end,
  assert at_init < 0.3, at_init                                     # and s, unreadable at init,
  assert q_accuracy(state) > 0.8, q_accuracy(state)                 # is read off Dec(CG(z, s)).


# --- (d) The real CLIs on a tiny on-disk MNIST ---------------------------------------


def _cli(env, module, *args):
  result = subprocess.run([sys.executable, '-m', module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, f'{module} {args}:\n{result.stderr[-3000:]}'
  return result.stdout


@pytest.mark.slow
def test_main_evaluate_traverse_through_the_real_cli(tmp_path):
  data_dir = fake_mnist.prepare(str(tmp_path), 256, 40)
  env = dict(os.environ, TFDS_DATA_DIR=data_dir, PYTHONPATH=str(REPO))
  workdir, out = tmp_path / 'run', tmp_path / 'figures'
  _cli(env, 'experiments.main', '--config=configs/cg_aae_mnist.py:smoke', f'--workdir={workdir}')
  assert checkpointing.Checkpointer(str(workdir), read_only=True).all_steps()[-1] == 6
  _cli(env, 'experiments.evaluate', f'--workdir={workdir}')
  with open(workdir / 'eval.json') as f:
    scores = json.load(f)
  assert tuple(scores) == evaluation.CHECKPOINT_METRIC_KEYS and scores['step'] == 6
  for key in ('test_error_hungarian', 'test_error_majority', 'nmi', 'frechet_distance',
              'generated_label_accuracy', 'cluster_neighbour_agreement', 'recon_mse',
              'recon_frechet_distance'):
    assert isinstance(scores[key], float), key
  stdout = _cli(env, 'experiments.traverse', f'--workdir={workdir}', f'--out={out}')
  figures = ['samples_by_category.png', 'reconstructions.png']
  assert sorted(os.listdir(out)) == sorted(figures)
  assert stdout.split() == [str(out / f) for f in figures]


# --- Configuration and registration ---------------------------------------------------


def test_registered_and_dispatched_by_state():
  config = _tiny()
  state = jax.eval_shape(functools.partial(METHOD.init_state, config=config,
                                           models=METHOD.build_models(config)),
                         jax.random.PRNGKey(0))
  assert methods.get('cg_aae').name == 'cg_aae'
  assert isinstance(methods.for_config(config), cg_aae.CGAAE)
  assert isinstance(methods.for_state(state), cg_aae.CGAAE)


@pytest.mark.parametrize('variant', ['paper', 'cpu', 'smoke'])
def test_configs_are_valid(variant):
  errors = []
  config = _config(variant)
  METHOD.validate(config, lambda ok, message: errors.append(message) if not ok else None)
  assert not errors
  assert set(config.model) == set(METHOD.model_config())
  with pytest.raises(ValueError, match='variant'):
    cg_aae_mnist.get_config('k16')


def test_cpu_variant_narrows_only_the_conv_widths_and_length():
  # The README's shortened MNIST row: the paper's codes, CG, D_C, fc widths,
  # losses and optimiser; narrower convolutions and one epoch.
  paper, cpu = _config('paper'), _config('cpu')
  narrowed = {'encoder_stem_features', 'encoder_block_features', 'decoder_base_features',
              'decoder_block_features', 'image_disc_features'}
  assert {k for k in paper.model if paper.model[k] != cpu.model[k]} == narrowed
  for section in ('codes', 'loss', 'optimizer', 'dataset'):
    assert cpu[section].to_dict() == paper[section].to_dict(), section
  assert (cpu.batch_size, cpu.num_epochs) == (paper.batch_size, 1)


@pytest.mark.parametrize('field,value,names', [
    ('codes.categorical', (10, 10), 'config.codes.categorical'),
    ('codes.num_continuous', 2, 'config.codes.num_continuous'),
    ('model.phase_schedule', 'sequential', 'config.model.phase_schedule'),
    ('model.reconstruction', 'l1', 'config.model.reconstruction'),
    ('model.decoder_base_side', 2, 'config.model.decoder_base_side'),
    ('model.encoder_block_strides', (1, 2, 2), 'config.model.encoder_block_strides'),
])
def test_validate_rejects(field, value, names):
  config = _config('smoke', **{field: value})
  errors = []
  METHOD.validate(config, lambda ok, message: errors.append(message) if not ok else None)
  assert errors, field
  assert all(m.startswith(names) for m in errors), errors


@pytest.mark.parametrize('field,value', [('schedule', 'two_stage'),
                                         ('loss.teacher_weight', 1.0)])
def test_latentgan_ae_fields_are_unknown(field, value):
  """The LatentGAN-AE's schedule and loss terms are not in the CG-AAE's schema."""
  with pytest.raises(config_validation.ConfigError,
                     match=re.escape(f'config.{field}: unknown field')):
    config_validation.validate(_config('smoke', **{field: value}), check_dataset=False)
