"""Tests for `lgae.nets.models`: shapes and sizes against the paper's Tables 2-4.

The paper-sized networks (3000-wide MLPs for Chairs and CelebA) are only ever
traced with `jax.eval_shape`, never allocated. Expected parameter counts are
derived in this file from the table rows written out literally below; nothing
expected is computed with the code under test.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import celeba, chairs, mnist
from lgae.nets import conv as conv_lib
from lgae.nets import fast_conv
from lgae.core import state as state_lib
import flax.linen as nn
from lgae.methods.latentgan_ae import networks
from lgae.methods.latentgan_ae import state as latentgan_state

# -----------------------------------------------------------------------------
# Hand-written table rows and parameter-count helpers.
# -----------------------------------------------------------------------------


def conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
  """Parameters of a k x k conv, with bias unless `bias=False`."""
  return k * k * cin * cout + (cout if bias else 0)


def dense(i: int, o: int) -> int:
  """Parameters of a dense layer with bias."""
  return i * o + o


def bn(c: int) -> int:
  """Trainable BatchNorm parameters (scale and bias); running stats excluded."""
  return 2 * c


# One entry per paper table. Encoder: (cin, cout) of each c4-s2 conv, then the
# fc (the image is 1x1 after the convs, so its input is the last conv width).
# Decoder: (cin, cout) of each c3 conv followed by BatchNorm, then the last
# c3 conv to the image channels. The tables do not say whether convs have a
# bias; the project drops it on the convs that feed a BatchNorm (BN's shift
# subsumes it, see lgae/models.py Decoder), so those rows count no bias. G / D: (in, out) of every fc row. D heads:
# fc-o1 (D), fc-o<n_cont> (Q, omitted if 0), one fc-o<K> per Cat code (Q).
TABLES = {
    # Table 2. Last decoder row says o3; the project uses 1 = dataset.channels.
    'mnist': dict(
        config=mnist,
        image_size=32, channels=1, latent_dim=64, g_input=76,
        enc_convs=[(1, 16), (16, 32), (32, 64), (64, 128), (128, 128)],
        enc_fc=(128, 64),
        dec_bn_convs=[(64, 128), (128, 64), (64, 32)],
        dec_out=(32, 1),
        gen=[(76, 1000), (1000, 1000), (1000, 1000), (1000, 64)],
        disc_trunk=[(64, 1000), (1000, 1000), (1000, 512)],
        disc_heads=[(512, 1), (512, 2), (512, 10)],
        num_continuous=2, categorical=(10,),
    ),
    # Table 3.
    'chairs': dict(
        config=chairs,
        image_size=64, channels=1, latent_dim=128, g_input=190,
        enc_convs=[(1, 64), (64, 128), (128, 256), (256, 512), (512, 1024),
                   (1024, 128)],
        enc_fc=(128, 128),
        dec_bn_convs=[(128, 512), (512, 256), (256, 128), (128, 64)],
        dec_out=(64, 1),
        gen=[(190, 3000), (3000, 3000), (3000, 3000), (3000, 3000),
             (3000, 128)],
        disc_trunk=[(128, 3000), (3000, 3000), (3000, 3000), (3000, 512)],
        disc_heads=[(512, 1), (512, 2), (512, 20), (512, 20), (512, 20)],
        num_continuous=2, categorical=(20, 20, 20),
    ),
    # Table 4. No continuous codes, so no fc-o<n_cont> head.
    'celeba': dict(
        config=celeba,
        image_size=32, channels=3, latent_dim=128, g_input=228,
        enc_convs=[(3, 64), (64, 128), (128, 256), (256, 512), (512, 128)],
        enc_fc=(128, 128),
        dec_bn_convs=[(128, 512), (512, 256), (256, 128)],
        dec_out=(128, 3),
        gen=[(228, 3000), (3000, 3000), (3000, 3000), (3000, 3000),
             (3000, 128)],
        disc_trunk=[(128, 3000), (3000, 3000), (3000, 3000), (3000, 512)],
        disc_heads=[(512, 1)] + [(512, 10)] * 10,
        num_continuous=0, categorical=(10,) * 10,
    ),
}
DATASETS = sorted(TABLES)


def expected_counts(t: dict) -> dict[str, int]:
  """Parameter counts per network, summed from the table rows."""
  ae = (sum(conv(ci, co, 4) for ci, co in t['enc_convs']) + dense(*t['enc_fc']) +
        sum(conv(ci, co, 3, bias=False) + bn(co) for ci, co in t['dec_bn_convs']) +
        conv(*t['dec_out'], 3))
  gen = sum(dense(i, o) for i, o in t['gen'])
  disc = (sum(dense(i, o) for i, o in t['disc_trunk']) +
          sum(dense(i, o) for i, o in t['disc_heads']))
  return {'ae': ae, 'gen': gen, 'disc': disc}


def _size(tree) -> int:
  return int(sum(np.prod(leaf.shape, dtype=np.int64) for leaf in jax.tree.leaves(tree)))


@functools.cache
def _abstract(name: str):
  """(config, models, abstract LatentGANState) of a paper config; nothing allocated."""
  config = TABLES[name]['config'].get_config()
  nets = networks.build_models(config)
  init = functools.partial(latentgan_state.init_state, config=config, models=nets)
  return config, nets, jax.eval_shape(init, jax.random.PRNGKey(0))


def test_mnist_hand_derivation_matches_known_totals():
  """Cross-checks the transcription of Table 2 above against known MNIST totals.

  With a bias on every conv the autoencoder would have 609905 parameters; the
  three bias-free decoder convs (128 + 64 + 32 biases) leave 609681.
  """
  assert expected_counts(TABLES['mnist']) == {
      'ae': 609905 - (128 + 64 + 32), 'gen': 2143064, 'disc': 1585181}


# -----------------------------------------------------------------------------
# Parameter counts and per-layer shapes.
# -----------------------------------------------------------------------------


@pytest.mark.parametrize('name', DATASETS)
@pytest.mark.parametrize('network', ['ae', 'gen', 'disc'])
def test_parameter_count_matches_paper_table(name, network):
  """Each network's parameter count equals the sum over its table's rows."""
  _, _, abstract = _abstract(name)
  assert _size(getattr(abstract, network).params) == expected_counts(TABLES[name])[network]


@pytest.mark.parametrize('name', DATASETS)
def test_count_params_helper(name):
  """`state.count_params` counts the same scalars as the tables."""
  _, _, abstract = _abstract(name)
  assert state_lib.count_params(abstract.gen.params) == expected_counts(TABLES[name])['gen']


@pytest.mark.parametrize('name', DATASETS)
def test_encoder_and_decoder_kernel_shapes(name):
  """Every conv has the table's kernel size and (cin, cout), in order."""
  t = TABLES[name]
  _, _, abstract = _abstract(name)
  enc = abstract.ae.params['encoder']
  dec = abstract.ae.params['decoder']
  for i, (ci, co) in enumerate(t['enc_convs']):
    assert enc[f'conv{i}']['kernel'].shape == (4, 4, ci, co)
  assert enc['fc']['kernel'].shape == t['enc_fc']
  assert len(enc) == len(t['enc_convs']) + 1
  for i, (ci, co) in enumerate(t['dec_bn_convs']):
    assert dec[f'conv{i}']['kernel'].shape == (3, 3, ci, co)
    assert 'bias' not in dec[f'conv{i}']  # BatchNorm's shift plays its role.
    assert dec[f'bn{i}']['scale'].shape == (co,)
    assert dec[f'bn{i}']['bias'].shape == (co,)
  assert dec['conv_out']['kernel'].shape == (3, 3) + t['dec_out']
  assert dec['conv_out']['bias'].shape == (t['dec_out'][1],)


@pytest.mark.parametrize('name', DATASETS)
def test_batch_stats_one_per_batchnorm(name):
  """Running mean/var exist for each decoder BatchNorm (3 on MNIST) and are not params."""
  t = TABLES[name]
  _, _, abstract = _abstract(name)
  stats = abstract.ae.batch_stats['decoder']
  assert sorted(stats) == [f'bn{i}' for i in range(len(t['dec_bn_convs']))]
  for i, (_, co) in enumerate(t['dec_bn_convs']):
    assert stats[f'bn{i}']['mean'].shape == (co,)
    assert stats[f'bn{i}']['var'].shape == (co,)
  assert set(abstract.ae.params) == {'encoder', 'decoder'}


def test_mnist_has_three_batchnorms():
  """Table 2's decoder has exactly three bn layers."""
  _, _, abstract = _abstract('mnist')
  assert len(abstract.ae.batch_stats['decoder']) == 3


# -----------------------------------------------------------------------------
# Output shapes (traced only).
# -----------------------------------------------------------------------------

BATCH = 3


@pytest.mark.parametrize('name', DATASETS)
def test_autoencoder_output_shapes(name):
  """Enc(x) is [N, latent_dim]; Dec(z) and the full pass give [N, size, size, channels]."""
  t = TABLES[name]
  _, (ae, _, _), abstract = _abstract(name)
  variables = {'params': abstract.ae.params, 'batch_stats': abstract.ae.batch_stats}
  x = jax.ShapeDtypeStruct((BATCH, t['image_size'], t['image_size'], t['channels']),
                           jnp.float32)
  zs = jax.ShapeDtypeStruct((BATCH, t['latent_dim']), jnp.float32)
  z = jax.eval_shape(lambda v, x: ae.apply(v, x, method='encode'), variables, x)
  assert z.shape == (BATCH, t['latent_dim'])
  image_shape = (BATCH, t['image_size'], t['image_size'], t['channels'])
  for train in (False, True):
    y = jax.eval_shape(
        lambda v, z: ae.apply(v, z, train=train, method='decode', mutable=('batch_stats',))[0],
        variables, zs)
    assert y.shape == image_shape
  z2, y2 = jax.eval_shape(lambda v, x: ae.apply(v, x, train=False), variables, x)
  assert z2.shape == (BATCH, t['latent_dim'])
  assert y2.shape == image_shape


@pytest.mark.parametrize('name', DATASETS)
def test_generator_output_shape(name):
  """G maps the table's input width (76 / 190 / 228) to [N, latent_dim]."""
  t = TABLES[name]
  _, (_, gen, _), abstract = _abstract(name)
  assert abstract.gen.params['mlp']['fc0']['kernel'].shape[0] == t['g_input']
  g_in = jax.ShapeDtypeStruct((BATCH, t['g_input']), jnp.float32)
  out = jax.eval_shape(gen.apply, {'params': abstract.gen.params}, g_in)
  assert out.shape == (BATCH, t['latent_dim'])


@pytest.mark.parametrize('name', DATASETS)
def test_discriminator_output_shapes(name):
  """D/Q give logit [N], cont_mean [N, n_cont] and one [N, K] per Cat code."""
  t = TABLES[name]
  _, (_, _, disc), abstract = _abstract(name)
  z = jax.ShapeDtypeStruct((BATCH, t['latent_dim']), jnp.float32)
  out = jax.eval_shape(disc.apply, {'params': abstract.disc.params}, z)
  assert out['logit'].shape == (BATCH,)
  assert out['cont_mean'].shape == (BATCH, t['num_continuous'])
  assert isinstance(out['cat_logits'], tuple)
  assert tuple(a.shape for a in out['cat_logits']) == tuple(
      (BATCH, k) for k in t['categorical'])


def test_celeba_has_no_continuous_head():
  """With 0 continuous codes, Q has no fc-o<n_cont> layer and returns [N, 0]."""
  _, (_, _, disc), abstract = _abstract('celeba')
  assert 'q_cont' not in abstract.disc.params
  assert 'd_head' in abstract.disc.params
  z = jax.ShapeDtypeStruct((2, 128), jnp.float32)
  out = jax.eval_shape(disc.apply, {'params': abstract.disc.params}, z)
  assert out['cont_mean'].shape == (2, 0)
  assert out['cont_mean'].dtype == jnp.float32


# -----------------------------------------------------------------------------
# Bilinear upsampling.
# -----------------------------------------------------------------------------


@pytest.mark.parametrize('factor', [2, 4])
def test_upsample_matches_jax_image_resize(factor):
  """Equals jax.image.resize('bilinear') on a random multi-channel batch."""
  x = jax.random.normal(jax.random.PRNGKey(factor), (2, 3, 5, 4))
  got = fast_conv.upsample_bilinear(x, factor)
  want = jax.image.resize(x, (2, 3 * factor, 5 * factor, 4), method='bilinear')
  assert got.shape == (2, 3 * factor, 5 * factor, 4)
  np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize('shape', [(2, 3, 5, 4), (1, 1, 4, 2), (1, 2, 1, 3), (1, 2, 2, 1)])
def test_upsample_gradient_matches_jax_image_resize(shape):
  """The hand-written backward of the x2 upsampling equals resize's autodiff gradient.

  Shapes include 1-pixel and 2-pixel axes, where both clamped edges meet.
  """
  n, h, w, c = shape
  x = jax.random.normal(jax.random.PRNGKey(1), shape)
  cotangent = jax.random.normal(jax.random.PRNGKey(2), (n, 2 * h, 2 * w, c))
  got = jax.grad(lambda x: jnp.sum(fast_conv.upsample_bilinear(x, 2) * cotangent))(x)
  want = jax.grad(lambda x: jnp.sum(
      jax.image.resize(x, (n, 2 * h, 2 * w, c), method='bilinear') * cotangent))(x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('factor', [2, 4])
def test_upsample_one_by_one_is_constant(factor):
  """A 1x1 map becomes a factor x factor map holding its value everywhere."""
  x = jnp.array([[[[1.5, -2.0]]], [[[0.25, 7.0]]]])  # [2, 1, 1, 2]
  got = np.asarray(fast_conv.upsample_bilinear(x, factor))
  assert got.shape == (2, factor, factor, 2)
  for n in range(2):
    for c in range(2):
      np.testing.assert_array_equal(got[n, :, :, c], np.full((factor, factor), x[n, 0, 0, c]))


def test_upsample_factor_one_is_identity():
  """Factor 1 returns the input unchanged."""
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 3, 3, 2))
  np.testing.assert_array_equal(fast_conv.upsample_bilinear(x, 1), x)


def test_upsample_2x2_to_4x4_by_hand():
  """PyTorch align_corners=False: source coord (i + 0.5) / 2 - 0.5, clamped.

  Output positions map to source coords [-0.25, 0.25, 0.75, 1.25] ->
  clamped [0, 0.25, 0.75, 1]; on [[0, 1], [2, 3]] (= 2 * row + col) the result
  is 2 * a[i] + a[j] with a = [0, 0.25, 0.75, 1].
  """
  x = jnp.array([[0.0, 1.0], [2.0, 3.0]])[None, :, :, None]
  expected = np.array([
      [0.0, 0.25, 0.75, 1.0],
      [0.5, 0.75, 1.25, 1.5],
      [1.5, 1.75, 2.25, 2.5],
      [2.0, 2.25, 2.75, 3.0],
  ])
  got = fast_conv.upsample_bilinear(x, 2)
  np.testing.assert_allclose(np.asarray(got)[0, :, :, 0], expected, atol=1e-6)


def test_upsample_1x2_row_by_4_by_hand():
  """Factor 4 on a 2-pixel row [0, 1]: coords (i + 0.5) / 4 - 0.5, clamped to [0, 1].

  i = 0..7 -> [-0.375, -0.125, 0.125, 0.375, 0.625, 0.875, 1.125, 1.375]
  -> [0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1]. Two rows so H is not 1.
  """
  x = jnp.array([[0.0, 1.0], [0.0, 1.0]])[None, :, :, None]
  row = np.array([0.0, 0.0, 0.125, 0.375, 0.625, 0.875, 1.0, 1.0])
  got = np.asarray(fast_conv.upsample_bilinear(x, 4))[0, :, :, 0]
  assert got.shape == (8, 8)
  np.testing.assert_allclose(got, np.tile(row, (8, 1)), atol=1e-6)


# -----------------------------------------------------------------------------
# Decoder behaviour (small networks, really run).
# -----------------------------------------------------------------------------


class _JitDecoder:
  """A small Decoder whose apply is jitted (one compile instead of op-by-op)."""

  def __init__(self):
    self._module = conv_lib.Decoder(upsample=(4, 2), features=(6,), out_channels=2)
    self._apply = jax.jit(self._module.apply, static_argnames=('train', 'mutable'))

  def apply(self, variables, z, *, train, mutable=False):
    return self._apply(variables, z, train=train, mutable=mutable)


@functools.cache
def _small_decoder():
  dec = _JitDecoder()
  variables = jax.jit(functools.partial(dec._module.init, train=False))(
      jax.random.PRNGKey(0), jnp.zeros((1, 5)))
  return dec, variables


def test_decoder_output_in_tanh_range():
  """Even for huge latents the output stays in [-1, 1] and saturates near both ends."""
  dec, variables = _small_decoder()
  z = 1000.0 * jax.random.normal(jax.random.PRNGKey(1), (8, 5))
  y, _ = dec.apply(variables, z, train=True, mutable=('batch_stats',))
  y_eval = dec.apply(variables, z, train=False)
  for out in (np.asarray(y), np.asarray(y_eval)):
    assert out.shape == (8, 8, 8, 2)
    assert np.all(out >= -1.0) and np.all(out <= 1.0)
  assert np.asarray(y_eval).max() > 0.99 and np.asarray(y_eval).min() < -0.99


def test_decoder_train_updates_batch_stats_with_momentum():
  """train=True moves running stats with momentum 0.9.

  bn0's batch mean mu does not depend on the running stats, so starting from
  mean 0: after one update m1 = 0.1 mu, after two m2 = 0.9 m1 + 0.1 mu = 1.9 m1.
  Variance from 1: v1 = 0.9 + 0.1 s, v2 = 0.81 + 0.19 s = 0.81 + 1.9 (v1 - 0.9).
  """
  dec, variables = _small_decoder()
  z = jax.random.normal(jax.random.PRNGKey(2), (8, 5))
  _, upd1 = dec.apply(variables, z, train=True, mutable=('batch_stats',))
  _, upd2 = dec.apply({'params': variables['params'], **upd1}, z, train=True,
                      mutable=('batch_stats',))
  m0 = np.asarray(variables['batch_stats']['bn0']['mean'])
  m1 = np.asarray(upd1['batch_stats']['bn0']['mean'])
  m2 = np.asarray(upd2['batch_stats']['bn0']['mean'])
  v1 = np.asarray(upd1['batch_stats']['bn0']['var'])
  v2 = np.asarray(upd2['batch_stats']['bn0']['var'])
  np.testing.assert_array_equal(m0, 0.0)
  assert np.abs(m1).max() > 1e-4
  np.testing.assert_allclose(m2, 1.9 * m1, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(v2, 0.81 + 1.9 * (v1 - 0.9), rtol=1e-4, atol=1e-6)


def test_decoder_eval_does_not_update_batch_stats():
  """train=False leaves running stats untouched and is per-example (batch independent)."""
  dec, variables = _small_decoder()
  z = jax.random.normal(jax.random.PRNGKey(3), (8, 5))
  y, upd = dec.apply(variables, z, train=False, mutable=('batch_stats',))
  jax.tree.map(np.testing.assert_array_equal, upd['batch_stats'], variables['batch_stats'])
  y_first = dec.apply(variables, z[:1], train=False)
  np.testing.assert_allclose(y_first, y[:1], atol=1e-6)


def test_decoder_train_mode_uses_batch_statistics():
  """train=True normalises with the batch: one example alone decodes differently."""
  dec, variables = _small_decoder()
  z = jax.random.normal(jax.random.PRNGKey(4), (8, 5))
  y, _ = dec.apply(variables, z, train=True, mutable=('batch_stats',))
  y2, _ = dec.apply(variables, z[:2], train=True, mutable=('batch_stats',))
  assert np.abs(np.asarray(y2[:1]) - np.asarray(y[:1])).max() > 1e-4


# -----------------------------------------------------------------------------
# The fast conv forms compute the plain convs they replace (same parameters).
# -----------------------------------------------------------------------------


def _params_and_grads(module, reference, x, seed=0):
  """Both modules' outputs and gradients (wrt input and parameters) for one init.

  The reference is an `nn.Conv` named like the fast module, so equal parameter
  trees (names, shapes and initial values) are part of what is checked.
  """
  variables = module.init(jax.random.PRNGKey(seed), x)
  ref_variables = reference.init(jax.random.PRNGKey(seed), x)
  jax.tree.map(np.testing.assert_array_equal, variables, ref_variables)
  cotangent = jax.random.normal(jax.random.PRNGKey(seed + 1),
                                jax.eval_shape(module.apply, variables, x).shape)

  def loss(params, x, apply):
    return jnp.sum(apply({'params': params}, x) * cotangent)

  results = []
  for apply in (module.apply, reference.apply):
    out = apply(variables, x)
    grads = jax.grad(loss, argnums=(0, 1))(variables['params'], x, apply)
    results.append((out, grads))
  return results


class _AsConv(nn.Module):
  """Holds one conv named 'conv', after an optional fixed preprocessing of the input."""
  make: functools.partial
  preprocess: functools.partial | None = None

  @nn.compact
  def __call__(self, x):
    if self.preprocess is not None:
      x = self.preprocess(x)
    return self.make(name='conv')(x)


@pytest.mark.parametrize('hw,cin,cout,factor,kernel,bias', [
    ((1, 1), 5, 7, 4, 3, False),    # MNIST conv0: 1x1 latent map broadcast to 4x4.
    ((4, 4), 6, 3, 2, 3, False),
    ((5, 3), 4, 1, 2, 3, True),     # Cout = 1 (MNIST conv_out), non-square.
    ((1, 2), 3, 2, 2, 3, False),    # factor 2 from a single row: both edges at once.
    ((3, 2), 4, 2, 3, 3, True),     # factor 3: jax.image.resize path.
    ((4, 4), 3, 2, 2, 4, True),     # even kernel: SAME pads 1 before, 2 after.
    ((4, 4), 3, 2, 1, 3, True),     # factor 1: plain conv.
])
def test_upsample_conv_equals_upsample_then_conv(hw, cin, cout, factor, kernel, bias):
  x = jax.random.normal(jax.random.PRNGKey(7), (2, *hw, cin))
  fast = _AsConv(functools.partial(conv_lib.UpsampleConv, cout, factor, kernel, use_bias=bias))
  reference = _AsConv(
      functools.partial(nn.Conv, cout, (kernel, kernel), padding='SAME', use_bias=bias),
      preprocess=functools.partial(fast_conv.upsample_bilinear, factor=factor))
  (out, grads), (ref_out, ref_grads) = _params_and_grads(fast, reference, x)
  assert out.shape == (2, hw[0] * factor, hw[1] * factor, cout)
  np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               grads, ref_grads)


@pytest.mark.parametrize('hw,cin,cout,kernel,stride', [
    ((32, 32), 1, 4, 4, 2),   # MNIST conv0.
    ((6, 4), 3, 5, 4, 2),
    ((2, 2), 4, 3, 4, 2),     # MNIST conv4: 2x2 -> 1x1.
])
def test_strided_conv_equals_nn_conv(hw, cin, cout, kernel, stride):
  x = jax.random.normal(jax.random.PRNGKey(3), (2, *hw, cin))
  pad = (kernel - stride) // 2
  fast = _AsConv(functools.partial(conv_lib.StridedConv, cout, kernel, stride))
  reference = _AsConv(functools.partial(nn.Conv, cout, (kernel, kernel), strides=stride,
                                        padding=pad))
  (out, grads), (ref_out, ref_grads) = _params_and_grads(fast, reference, x)
  assert out.shape == (2, hw[0] // stride, hw[1] // stride, cout)
  np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               grads, ref_grads)


def test_decoder_upsample_conv_orders_agree():
  """Both decoder_upsample_conv settings build the same parameters and the same function."""
  config = mnist.get_config()
  z = jax.random.normal(jax.random.PRNGKey(5), (4, config.model.latent_dim))
  outputs, trees = [], []
  for order in ('project_first', 'upsample_first'):
    config.model.decoder_upsample_conv = order
    autoencoder, _, _ = networks.build_models(config)
    decoder = autoencoder.decoder
    variables = jax.jit(functools.partial(decoder.init, train=False))(jax.random.PRNGKey(0), z)
    trees.append(variables)
    outputs.append(jax.jit(functools.partial(decoder.apply, train=False))(variables, z))
  jax.tree.map(np.testing.assert_array_equal, trees[0], trees[1])
  assert outputs[0].shape == (4, 32, 32, 1)
  np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('backend, project_first', [('cpu', True), ('gpu', False), ('tpu', False)])
def test_auto_decoder_upsample_conv_follows_the_backend(monkeypatch, backend, project_first):
  """The default 'auto' builds project_first on CPU, upsample_first on GPU/TPU; explicit values win."""
  config = mnist.get_config('smoke')
  assert config.model.decoder_upsample_conv == 'auto'
  monkeypatch.setattr(jax, 'default_backend', lambda: backend)
  assert networks.build_models(config)[0].decoder.project_first is project_first
  for explicit, expected in (('project_first', True), ('upsample_first', False)):
    config.model.decoder_upsample_conv = explicit
    assert networks.build_models(config)[0].decoder.project_first is expected
