"""InfoGAN (Chen et al. 2016) in image space: the LatentGAN-AE paper's Table 1 comparator.

G maps [noise, one-hot Cat codes, U(-1, 1) codes] straight to images; D and Q
share a conv trunk on images, D ends in a real/fake logit and Q in one
categorical head per Cat code and the means of the U codes (a unit-variance
Gaussian, as the reference code's `fix_std`). Networks: the InfoGAN paper's
MNIST architecture (Appendix C.1), on lgae's [-1, 1] images of side
`config.dataset.image_size` (32 for padded MNIST; the paper's is 28):

  G    Input in R^74 = 62 noise + Cat(10) + 2 x U(-1, 1)
       fc-o1024-bn-relu
       fc-o(s/4 * s/4 * 128)-bn-relu, reshaped to s/4 x s/4 x 128
       upconv4-o64-s2-bn-relu
       upconv4-o<channels>-s2-tanh        (the paper's sigmoid, for [-1, 1])
  D/Q  conv4-o64-s2-lrelu(0.1)
       conv4-o128-s2-bn-lrelu
       fc-o1024-bn-lrelu
       D: fc-o1 (logit)   Q: fc-o128-bn-lrelu, then fc-oK per Cat code, fc-o<n_cont>

Every width comes from `config.model` (`InfoGAN.model_config`). No bias
precedes a BatchNorm (its shift subsumes it). The clusters InfoGAN infers for
an image are Q's first Cat head (argmax), as in the paper's MNIST
classification result.

The combined step follows `lgae.methods.latentgan_ae.step`: D/Q first, on the real batch and
on stop_gradient(G(codes)) in two separate forwards (BatchNorm must not see a
mixed batch, or D could tell real from fake by the batch statistics alone),
then G through the freshly updated D/Q.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from lgae.core import latent
from lgae.objectives import gan, info
from lgae.core import state as state_lib
from lgae.core import method as method_lib

class InfoGANState(flax.struct.PyTreeNode):
  """Everything that changes during InfoGAN training.

  Attributes:
    step: int32 scalar, the number of combined updates done.
    rng: the base PRNG key (raw uint32[2]); step `s` draws from fold_in(rng, s).
    gen: G's parameters, optimiser state and BatchNorm statistics.
    disc: D/Q's (shared trunk, D head, Q heads) parameters, optimiser state
      and BatchNorm statistics.
  """

  step: jax.Array
  rng: jax.Array
  gen: state_lib.AutoencoderState
  disc: state_lib.AutoencoderState


# The 4x4 stride-2 transposed conv, per axis: output 2i + phase reads input
# i + offset through kernel tap `tap`, for these (tap, offset) pairs.
_PHASE_TAPS = {0: ((0, -1), (2, 0)), 1: ((1, 0), (3, 1))}


class ConvTranspose4x4(nn.Module):
  """A 4x4, stride-2 transposed conv with SAME padding (output 2H x 2W), computed low-res.

  Same parameter (`kernel` [4, 4, in, out], optional `bias`), initialisation
  and function as `nn.ConvTranspose(out, (4, 4), strides=(2, 2),
  padding='SAME')`: output row 2i reads input rows i - 1 and i through kernel
  rows 0 and 2, row 2i + 1 reads rows i and i + 1 through kernel rows 1 and 3
  (`_PHASE_TAPS`; columns alike). So one matmul projects every input pixel on
  all 16 taps, and each of the four output phases is a sum of four shifted
  (zero-filled) tap maps. The point is speed: XLA:CPU lowers the transposed
  conv's input-dilated form to slow generic convolutions (G's 128 -> 64 layer,
  forward + backward, took ~5x as long as this).
  """

  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    n, h, w, c = x.shape
    kernel = self.param('kernel', nn.linear.default_kernel_init, (4, 4, c, self.features))
    taps = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(c, 16 * self.features)
    projected = jnp.dot(x.reshape(n * h * w, c), taps).reshape(n, h, w, 4, 4, self.features)
    # One zero row/column on each side: the reads at offsets -1 and +1.
    projected = jnp.pad(projected, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)))
    rows = []
    for a in range(2):
      phases = []
      for b in range(2):
        phases.append(sum(projected[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w, ty, tx]
                          for ty, dy in _PHASE_TAPS[a] for tx, dx in _PHASE_TAPS[b]))
      rows.append(jnp.stack(phases, axis=3))          # [n, h, w, 2 (column phase), out]
    y = jnp.stack(rows, axis=2).reshape(n, 2 * h, 2 * w, self.features)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return y


class Generator(nn.Module):
  """G: [noise, one-hot Cat codes, U codes] -> an image in [-1, 1].

  fc-bn-relu, fc to a (s / 2**L) x (s / 2**L) x features[0] map (bn-relu),
  then a 4x4 stride-2 transposed conv (bn-relu) per further entry of
  `features`, and a last one to `out_channels` with tanh: L = len(features)
  doublings in all.
  """

  fc: int
  features: Sequence[int]
  out_channels: int
  image_size: int
  batch_norm_momentum: float = 0.9

  @nn.compact
  def __call__(self, g_input: jax.Array, *, train: bool) -> jax.Array:
    bn = lambda name: nn.BatchNorm(use_running_average=not train,
                                   momentum=self.batch_norm_momentum, name=name)
    side = self.image_size // 2 ** len(self.features)
    x = nn.relu(bn('bn_fc')(nn.Dense(self.fc, use_bias=False, name='fc')(g_input)))
    x = nn.Dense(side * side * self.features[0], use_bias=False, name='fc_map')(x)
    x = nn.relu(bn('bn_map')(x))
    x = x.reshape((x.shape[0], side, side, self.features[0]))
    for i, f in enumerate(self.features[1:]):
      x = ConvTranspose4x4(f, use_bias=False, name=f'upconv{i}')(x)
      x = nn.relu(bn(f'bn_upconv{i}')(x))
    return jnp.tanh(ConvTranspose4x4(self.out_channels, name='upconv_out')(x))


class DiscriminatorQ(nn.Module):
  """D and Q on images: a shared conv trunk, D's logit head and Q's code heads.

  Q's heads sit on D's trunk (the paper: "Q shares all convolutional layers
  with D"), so the MI loss trains the trunk too. Returns the same dict as
  `lgae.nets.models.DiscriminatorQ`, so the losses are written once.
  """

  features: Sequence[int]
  fc: int
  q_hidden: int
  categorical: Sequence[int]
  num_continuous: int
  leaky_slope: float = 0.1
  batch_norm_momentum: float = 0.9

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> dict[str, Any]:
    """Returns {'logit': [N], 'cat_logits': tuple of [N, K], 'cont_mean': [N, n_cont]}."""
    bn = lambda name: nn.BatchNorm(use_running_average=not train,
                                   momentum=self.batch_norm_momentum, name=name)
    act = lambda h: nn.leaky_relu(h, self.leaky_slope)
    for i, f in enumerate(self.features):
      # 4x4 stride 2, padding 1: each halves H and W. The paper has no
      # BatchNorm on D's first layer (DCGAN's rule), so only it has a bias.
      x = nn.Conv(f, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=i == 0,
                  name=f'conv{i}')(x)
      if i > 0:
        x = bn(f'bn_conv{i}')(x)
      x = act(x)
    x = x.reshape((x.shape[0], -1))
    h = act(bn('bn_fc')(nn.Dense(self.fc, use_bias=False, name='fc')(x)))
    out = {'logit': nn.Dense(1, name='d_head')(h)[:, 0]}
    q = act(bn('q_bn')(nn.Dense(self.q_hidden, use_bias=False, name='q_fc')(h)))
    out['cat_logits'] = tuple(nn.Dense(k, name=f'q_cat{i}')(q)
                              for i, k in enumerate(self.categorical))
    out['cont_mean'] = (nn.Dense(self.num_continuous, name='q_cont')(q)
                        if self.num_continuous else jnp.zeros((x.shape[0], 0), x.dtype))
    return out


def _variables(train_state: state_lib.AutoencoderState, params=None) -> dict[str, Any]:
  return {'params': train_state.params if params is None else params,
          'batch_stats': train_state.batch_stats}


class InfoGAN(method_lib.Method):
  """InfoGAN on images: G, and D/Q sharing a trunk, each with BatchNorm."""

  name = 'infogan'
  state_type = InfoGANState

  # --- Configuration -------------------------------------------------------

  def model_config(self) -> ml_collections.ConfigDict:
    m = ml_collections.ConfigDict()
    # G: fc-o<generator_fc>-bn-relu, then fc to an (s / 2**L) x (s / 2**L) x
    # generator_features[0] map (bn-relu), then a 4x4 stride-2 transposed conv
    # (bn-relu) per further entry, and a last one to dataset.channels with tanh;
    # L = len(generator_features) doublings (paper: 7x7x128 -> 14x14x64 -> 28x28).
    m.generator_fc = 1024
    m.generator_features = (128, 64)
    # D/Q trunk: a 4x4 stride-2 conv per entry (all but the first followed by
    # BatchNorm), leaky relu after each, then fc-o<discriminator_fc>-bn-lrelu.
    m.discriminator_features = (64, 128)
    m.discriminator_fc = 1024
    # Q: fc-o<q_hidden>-bn-lrelu on the trunk, then one fc-oK per Cat code
    # (logits) and fc-o<codes.num_continuous> (means of unit-variance Gaussians).
    m.q_hidden = 128
    m.leaky_slope = 0.1            # the paper's lRELU slope.
    # Running averages: stat <- momentum * stat + (1 - momentum) * batch stat
    # (0.9: TensorFlow-era batchnorm decay of the reference code's time).
    m.batch_norm_momentum = 0.9
    return m

  def validate(self, config: ml_collections.ConfigDict, need: method_lib.Need) -> None:
    m, d = config.model, config.dataset
    method_lib.need_a_code_for_q(config, need)
    for name in ('generator_features', 'discriminator_features'):
      value = tuple(m[name])
      need(len(value) > 0 and all(isinstance(v, int) and v > 0 for v in value),
           f'config.model.{name}={value} must be a non-empty sequence of positive ints.')
    for name in ('generator_fc', 'discriminator_fc', 'q_hidden'):
      need(m[name] > 0, f'config.model.{name}={m[name]} must be > 0.')
    need(0 <= m.leaky_slope < 1, f'config.model.leaky_slope={m.leaky_slope} must be in [0, 1).')
    need(0 <= m.batch_norm_momentum < 1,
         f'config.model.batch_norm_momentum={m.batch_norm_momentum} must be in [0, 1).')
    # G doubles the side len(generator_features) times from an integer side; D
    # halves it len(discriminator_features) times with even sides throughout.
    doublings = max(len(m.generator_features), len(m.discriminator_features), 1)
    factor = 2 ** doublings
    need(d.image_size % factor == 0 and d.image_size >= factor,
         f'config.dataset.image_size={d.image_size} must be a positive multiple of {factor} '
         f'(InfoGAN\'s G and D change the side by 2 in each of {doublings} stride-2 layers): '
         'pick another image_size (MNIST: 32 with resize=pad).')
    need(config.schedule == 'joint',
         f"config.schedule={config.schedule!r}: InfoGAN has no autoencoder stage; use 'joint' "
         "('two_stage' is the latentgan_ae schedule).")
    method_lib.refuse_latentgan_loss_terms(config, need, 'InfoGAN')

  # --- Networks and state ----------------------------------------------------

  def build_models(self, config: ml_collections.ConfigDict) -> tuple[Generator, DiscriminatorQ]:
    """(G, D/Q), built from config.model, config.codes and config.dataset."""
    m = config.model
    generator = Generator(fc=m.generator_fc, features=tuple(m.generator_features),
                          out_channels=config.dataset.channels,
                          image_size=config.dataset.image_size,
                          batch_norm_momentum=m.batch_norm_momentum)
    discriminator = DiscriminatorQ(features=tuple(m.discriminator_features),
                                   fc=m.discriminator_fc, q_hidden=m.q_hidden,
                                   categorical=tuple(config.codes.categorical),
                                   num_continuous=config.codes.num_continuous,
                                   leaky_slope=m.leaky_slope,
                                   batch_norm_momentum=m.batch_norm_momentum)
    return generator, discriminator

  def init_state(self, key: jax.Array, config: ml_collections.ConfigDict,
                 models: tuple[Generator, DiscriminatorQ]) -> InfoGANState:
    generator, discriminator = models
    layout = self.code_layout(config)
    k_gen, k_disc, k_rng = jax.random.split(key, 3)
    size, channels = config.dataset.image_size, config.dataset.channels
    gen_vars = generator.init(k_gen, jnp.zeros((1, layout.input_dim)), train=False)
    disc_vars = discriminator.init(k_disc, jnp.zeros((1, size, size, channels)), train=False)
    return InfoGANState(
        step=jnp.zeros((), jnp.int32),
        rng=k_rng,
        gen=state_lib.AutoencoderState.create(
            apply_fn=generator.apply, params=gen_vars['params'],
            tx=state_lib.make_optimizer(config, 'generator'),
            batch_stats=gen_vars['batch_stats']),
        disc=state_lib.AutoencoderState.create(
            apply_fn=discriminator.apply, params=disc_vars['params'],
            tx=state_lib.make_optimizer(config, 'discriminator'),
            batch_stats=disc_vars['batch_stats']),
    )

  # --- Training --------------------------------------------------------------

  def train_step(self, state: InfoGANState, batch: dict[str, jax.Array], *,
                 config: ml_collections.ConfigDict) -> tuple[InfoGANState, method_lib.Metrics]:
    """D/Q, then G (through the updated D/Q), on one batch of real images.

    Every network runs in train mode (BatchNorm on the batch's statistics).
    D/Q's running statistics follow its real forward, then its fake forward,
    in that order; the forward of G's update leaves them alone (it is G's
    step, not D's).
    """
    lc = config.loss
    layout = self.code_layout(config)
    images = batch['image']
    batch_size = images.shape[0]
    key = jax.random.fold_in(state.rng, state.step)
    k_codes, k_real, k_fake = jax.random.split(key, 3)
    codes = latent.sample(k_codes, layout, batch_size)
    g_input = latent.generator_input(codes, layout)

    # G's forward is run once: its output is D's fake batch, and its VJP is
    # reused for G's own update (G's parameters do not change in between).
    def generate_fn(params):
      fake, updates = state.gen.apply_fn(_variables(state.gen, params), g_input, train=True,
                                         mutable=['batch_stats'])
      return fake, updates['batch_stats']

    fake, gen_vjp, gen_stats = jax.vjp(generate_fn, state.gen.params, has_aux=True)
    real_targets, fake_targets = gan.discriminator_targets(k_real, k_fake, batch_size, lc)

    mi_losses = lambda out: info.weighted_mi_losses(out, codes, lc)

    fake_input = jax.lax.stop_gradient(fake)

    def disc_loss_fn(params):
      real_out, updates = state.disc.apply_fn(
          {'params': params, 'batch_stats': state.disc.batch_stats}, images, train=True,
          mutable=['batch_stats'])
      fake_out, updates = state.disc.apply_fn(
          {'params': params, 'batch_stats': updates['batch_stats']}, fake_input, train=True,
          mutable=['batch_stats'])
      d_loss = gan.discriminator_loss(real_out['logit'], fake_out['logit'], real_targets,
                                         fake_targets)
      mi_cat, mi_cont, mi = mi_losses(fake_out)
      metrics = {'d_loss': d_loss, 'mi_cat_loss': mi_cat, 'mi_cont_loss': mi_cont,
                 'd_real_prob': jnp.mean(jax.nn.sigmoid(real_out['logit'])),
                 'd_fake_prob': jnp.mean(jax.nn.sigmoid(fake_out['logit']))}
      return d_loss + mi, (updates['batch_stats'], metrics)

    (_, (disc_stats, disc_metrics)), disc_grads = jax.value_and_grad(
        disc_loss_fn, has_aux=True)(state.disc.params)
    new_disc = state.disc.apply_gradients(grads=disc_grads, batch_stats=disc_stats)

    # G, with D/Q fixed at their new values: the loss's gradient with respect
    # to the fake images, pulled back through G's saved VJP.
    def gen_loss_fn(images_fake):
      out, _ = new_disc.apply_fn(_variables(new_disc), images_fake, train=True,
                                 mutable=['batch_stats'])
      g_loss = gan.generator_loss(out['logit'])
      _, _, mi = mi_losses(out)
      return g_loss + mi, g_loss

    (_, g_loss), fake_grads = jax.value_and_grad(gen_loss_fn, has_aux=True)(fake)
    (gen_grads,) = gen_vjp(fake_grads)
    new_gen = state.gen.apply_gradients(grads=gen_grads, batch_stats=gen_stats)
    new_state = state.replace(step=state.step + 1, gen=new_gen, disc=new_disc)
    return new_state, {**disc_metrics, 'g_loss': g_loss}

  # --- What evaluation and the figures need ----------------------------------

  def eval_outputs(self, state: InfoGANState, images: jax.Array) -> dict[str, Any]:
    """Q's inferred codes on real images (inference mode; no decoder, so no 'recon').

    'z' is [cont means, softmax of each Cat head]: the code InfoGAN reads off
    an image, the representation the neighbour and disentanglement metrics score.
    """
    out = state.disc.apply_fn(_variables(state.disc), images, train=False)
    probs = [jax.nn.softmax(logits, axis=-1) for logits in out['cat_logits']]
    return {'z': jnp.concatenate([out['cont_mean'], *probs], axis=-1),
            'cat_logits': tuple(out['cat_logits'])}

  def generate(self, state: InfoGANState, codes: latent.Codes,
               layout: latent.CodeLayout) -> jax.Array:
    return state.gen.apply_fn(_variables(state.gen), latent.generator_input(codes, layout),
                              train=False)


METHOD = InfoGAN()
