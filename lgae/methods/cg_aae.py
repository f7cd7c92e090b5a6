r"""The AAE with a learned prior: a code generator CG(z, s) (Wang, Peng & Ko, 2020), unsupervised.

"Learning priors for adversarial autoencoders", the unsupervised setting of its
Fig. 5: a code generator CG turns simple noise, z ~ N(0, I) and a one-hot
s ~ Cat(K) (K = 10 on MNIST: the presumed number of clusters), into the prior
that the encoder's codes are matched to, and is itself trained so that the
decoder maps its codes to realistic images:

  Enc    x -> Enc(x) in R^code_dim      residual convs, avg pool, fc-bn-relu, fc
  Dec    code -> image in [-1, 1]       fc to 4x4x512-bn-relu, up-sampling residual blocks,
                                        conv3x3-tanh
  CG     [z, one-hot s] -> z_c          fc-bn-relu, fc-bn (linear)
  D_C    code -> real/fake logit        lrelu MLP (1000, 500, 200); class agnostic (Fig. 5)
  D_I/Q  image -> real/fake logit and Q's K logits for s, on one lrelu conv trunk whose
         last activation is the perceptual feature map F

The losses (BCE on logits; z_c = CG(z, s); targets from config.loss):

  L^I_GAN (Eq. 4)  D_I:     -log D_I(x) - log(1 - D_I(Dec(z_c)))
                   CG, Dec: -log D_I(Dec(z_c))                      (non-saturating)
  L^C_GAN (Eq. 5)  D_C:     -log D_C(z_c) - log(1 - D_C(Enc(x)))   (z_c is D_C's "real")
                   Enc:     -log D_C(Enc(x))                        (non-saturating)
  L_rec   (Eq. 6)  mean over the elements of (F(Dec(Enc(x))) - F(x))^2
                   (`model.reconstruction='pixel'`: of Dec(Enc(x)) - x, Table 3's ablation)
  L_I     (Eq. 7)  -E_{z, s} log Q(s | Dec(CG(z, s)))   (-I(s; Dec(z_c)) + H(s) <= L_I)

Algorithm 1 runs two phases on every mini-batch, each with its own draw of (z, s):

  AAE phase (CG fixed):   D_C  <- -L^C_GAN,  then  Enc <- L^C_GAN + L_rec,
                          Dec  <- lambda L_rec          (lambda: model.rec_decoder_weight)
  prior improvement:      D_I/Q <- -L^I_GAN + lambda_I L_I,  then
                          CG, Dec <- L^I_GAN + lambda_I L_I  (lambda_I: loss.lambda_disc)

(the paper also updates the decoder in the prior phase, its footnote 2 and
Table 3's "C"; `model.prior_phase_updates_decoder=False` is its ablation).
Each generator side plays against its freshly updated discriminator, as in
Algorithm 1's order. Q is a head on D_I's trunk (Table A.3), so L_I also
trains the trunk (InfoGAN's convention).

How the phases map onto lgae's one combined update per batch
(`model.phase_schedule`):

  'both' (default): each step runs both phases on its batch, as Algorithm 1
     does per mini-batch. Every network takes one Adam step; the decoder,
     trained in both phases, takes ONE step on the sum
     lambda grad L_rec + grad(L^I_GAN + lambda_I L_I), both gradients at the
     step's starting parameters. Why: lgae keeps one optimiser state per
     network (one Adam applied twice in a step would advance its moments
     twice), and every batch still serves both phases. The one departure
     from Algorithm 1: the prior phase sees the decoder before, not after,
     this batch's AAE-phase update.
  'alternate': `lax.cond` on the step's parity: even steps run the AAE phase,
     odd steps the prior improvement phase (only that phase's networks and
     optimiser states move). Sequentially exact (each phase sees the other's
     last update), but each phase sees every other batch, and a phase's
     metrics are logged as 0 on the other phase's steps.

BatchNorm (Enc's fc, Dec's first layer, CG's two fcs, D_I's convs after the
first) runs on batch statistics during training. Running averages follow the
forwards of each network's own updates: Enc's on x; Dec's on Enc(x) then on
CG(z, s); CG's in the prior phase only (its AAE-phase forward, whose output
is D_C's real sample, uses batch statistics and moves nothing: CG is fixed
there); D_I's on x then on the fakes. F in L_rec is D_I's trunk in inference
mode (running averages, step-start parameters: D_I is fixed in the AAE
phase): one fixed function of x and of Dec(Enc(x)) alike. In train mode each
batch would be normalised by its own statistics, which removes exactly the
per-channel mean difference the loss should see.

What evaluation reads: z = Enc(x) (the representation the paper's Fig. 13
compares with CG's codes); the cluster of an image is argmax Q(s | x), Q's
prediction of s on the real image (the paper shows its clustering only in
figures and does not say how an image is assigned; Q on x is InfoGAN's
reading, and Q is the network trained to recover s); `recon` is
Dec(Enc(x)). `generate` decodes Dec(CG([z, one-hot s])) and
`generated_latents` is CG([z, one-hot s]) itself (a generator in the
representation space, so the latent diagnostics measure Fig. 13's match of
Enc(x) and CG's codes).
"""

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from flax.training import train_state

from lgae.core import latent
from lgae.core import method as method_lib
from lgae.core import state as state_lib
from lgae.nets import dcgan
from lgae.objectives import gan, info, reconstruction

PHASE_SCHEDULES = ('both', 'alternate')
RECONSTRUCTIONS = ('perceptual', 'pixel')

# The metrics each phase reports (the other phase's are 0 on 'alternate' steps).
AAE_METRICS = ('d_code_loss', 'g_code_loss', 'rec_loss', 'pixel_mse', 'd_code_real_prob',
               'd_code_fake_prob')
PRIOR_METRICS = ('d_image_loss', 'g_image_loss', 'mi_cat_loss', 'd_image_real_prob',
                 'd_image_fake_prob')

_PAD1 = ((1, 1), (1, 1))


def _batch_norm(train: bool, momentum: float, name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=momentum, name=name)


class ResidualBlock(nn.Module):
  """Table A.2's block: conv3x3(stride)-relu, conv3x3-relu, then relu(skip(x) + residual).

  The skip is the identity when the shape is kept; otherwise (the paper is
  silent) a 1x1 stride-s projection without bias (ResNet's option B),
  computed as a subsampling and a dense layer. No bias: a per-channel
  constant here reaches Enc's fc-BN as a batch-constant offset, which BN
  removes, so its gradient would be ~0 and Adam would random-walk it on
  float round-off (it made 1 and 4 devices disagree).
  """

  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    r = nn.relu(nn.Conv(self.features, (3, 3), strides=self.stride, padding=_PAD1,
                        name='conv0')(x))
    r = nn.relu(nn.Conv(self.features, (3, 3), padding=_PAD1, name='conv1')(r))
    if self.stride != 1 or x.shape[-1] != self.features:
      # Output pixel i of the padded stride-s conv is centred on input pixel s * i.
      x = nn.Dense(self.features, use_bias=False, name='skip')(
          x[:, ::self.stride, ::self.stride, :])
    return nn.relu(x + r)


class UpResidualBlock(nn.Module):
  """Table A.1's up-sampling residual block: doubles H and W.

  upconv4x4-s2-relu, conv3x3-relu, then relu(skip(x) + residual); the skip
  (the paper is silent) is a 1x1 conv followed by nearest-neighbour x2
  upsampling (computed in that order: the same function, 4x cheaper), without
  bias as the encoder's projections (`ResidualBlock`).
  """

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    r = nn.relu(dcgan.ConvTranspose4x4(self.features, name='upconv')(x))
    r = nn.relu(nn.Conv(self.features, (3, 3), padding=_PAD1, name='conv')(r))
    skip = nn.Dense(self.features, use_bias=False, name='skip')(x)
    skip = jnp.repeat(jnp.repeat(skip, 2, axis=1), 2, axis=2)
    return nn.relu(skip + r)


class Encoder(nn.Module):
  """x -> Enc(x): conv3x3 stem, residual blocks, average pooling, fc-bn-relu, fc (linear)."""

  stem_features: int
  stem_stride: int
  block_features: tuple[int, ...]
  block_strides: tuple[int, ...]
  fc: int
  code_dim: int
  batch_norm_momentum: float = 0.9

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = nn.relu(nn.Conv(self.stem_features, (3, 3), strides=self.stem_stride, padding=_PAD1,
                        name='stem')(x))
    for i, (f, s) in enumerate(zip(self.block_features, self.block_strides)):
      x = ResidualBlock(f, s, name=f'block{i}')(x)
    # Table A.1's "4x4 avg. pooling": the whole remaining map (see the config).
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dense(self.fc, use_bias=False, name='fc')(x)
    x = nn.relu(_batch_norm(train, self.batch_norm_momentum, 'bn_fc')(x))
    return nn.Dense(self.code_dim, name='fc_out')(x)


class Decoder(nn.Module):
  """code -> image in [-1, 1]: a base map (bn-relu), up-sampling residual blocks, conv3x3-tanh.

  Table A.1's first layer, "4x4 upconv 512 stride 1" on the code viewed as a
  1x1 map, gives each of the 4x4 output pixels its own kernel tap, i.e. it
  is a dense layer to a 4x4x512 map (the same function and parameter count;
  no bias: BatchNorm follows).
  """

  base_side: int
  base_features: int
  block_features: tuple[int, ...]
  out_channels: int
  batch_norm_momentum: float = 0.9

  @nn.compact
  def __call__(self, code: jax.Array, *, train: bool) -> jax.Array:
    side, f = self.base_side, self.base_features
    x = nn.Dense(side * side * f, use_bias=False, name='fc')(code)
    x = x.reshape((code.shape[0], side, side, f))
    x = nn.relu(_batch_norm(train, self.batch_norm_momentum, 'bn_fc')(x))
    for i, features in enumerate(self.block_features):
      x = UpResidualBlock(features, name=f'block{i}')(x)
    return jnp.tanh(nn.Conv(self.out_channels, (3, 3), padding=_PAD1, name='conv_out')(x))


class CodeGenerator(nn.Module):
  """CG: [z, one-hot s] -> z_c; Table A.2: fc-bn-relu, fc-bn (linear, no bias before a BN)."""

  hidden: int
  code_dim: int
  batch_norm_momentum: float = 0.9

  @nn.compact
  def __call__(self, g_input: jax.Array, *, train: bool) -> jax.Array:
    h = nn.Dense(self.hidden, use_bias=False, name='fc0')(g_input)
    h = nn.relu(_batch_norm(train, self.batch_norm_momentum, 'bn0')(h))
    h = nn.Dense(self.code_dim, use_bias=False, name='fc1')(h)
    return _batch_norm(train, self.batch_norm_momentum, 'bn1')(h)


class CodeDiscriminator(nn.Module):
  """D_C: leaky-relu MLP on a code, ending in one real/fake logit per row ([N])."""

  hidden: tuple[int, ...]
  leaky_slope: float = 0.2

  @nn.compact
  def __call__(self, code: jax.Array) -> jax.Array:
    x = code
    for i, h in enumerate(self.hidden):
      x = nn.leaky_relu(nn.Dense(h, name=f'fc{i}')(x), self.leaky_slope)
    return nn.Dense(1, name='fc_out')(x)[:, 0]


class ImageDiscriminatorQ(nn.Module):
  """D_I and Q on images: 4x4 stride-2 lrelu convs (BN after all but the first), two heads.

  Returns {'logit': [N], 'cat_logits': (Q's [N, K] logits,), 'cont_mean':
  [N, 0], 'features': the last conv's activation F}; the first three are
  `info.weighted_mi_losses`'s and InfoGAN's format.
  """

  features: tuple[int, ...]
  num_clusters: int
  leaky_slope: float = 0.2
  batch_norm_momentum: float = 0.9

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> dict[str, Any]:
    x = dcgan.conv_trunk(x, self.features, train=train, leaky_slope=self.leaky_slope,
                         batch_norm_momentum=self.batch_norm_momentum, bn_prefix='bn')
    flat = x.reshape((x.shape[0], -1))
    return {'logit': nn.Dense(1, name='d_head')(flat)[:, 0],
            'cat_logits': (nn.Dense(self.num_clusters, name='q_head')(flat),),
            'cont_mean': jnp.zeros((x.shape[0], 0), x.dtype),
            'features': x}


class CGAAEModels(NamedTuple):
  encoder: Encoder
  decoder: Decoder
  code_generator: CodeGenerator
  disc_code: CodeDiscriminator
  disc_image: ImageDiscriminatorQ


class CGAAEState(state_lib.StepState):
  """Everything that changes during CG-AAE training (beyond `StepState`'s step and rng).

  Attributes:
    enc: Enc's parameters, Adam state and BatchNorm statistics.
    dec: Dec's.
    cg: the code generator's.
    disc_code: D_C's (no BatchNorm).
    disc_image: D_I/Q's (shared trunk, D_I head, Q head).
  """

  enc: state_lib.AutoencoderState
  dec: state_lib.AutoencoderState
  cg: state_lib.AutoencoderState
  disc_code: train_state.TrainState
  disc_image: state_lib.AutoencoderState


def _infer(net: state_lib.AutoencoderState, x: jax.Array) -> Any:
  """Inference-mode forward (running statistics), at the net's current parameters."""
  return state_lib.apply(net, x, train=False)


def _zeros_like(tree: Any) -> Any:
  return jax.tree.map(jnp.zeros_like, tree)


class CGAAE(method_lib.Method):
  """The AAE with a learned prior (code generator), unsupervised setting (Fig. 5)."""

  name = 'cg_aae'
  state_type = CGAAEState
  has_decoder = True
  has_latent_generator = True

  # --- Configuration -------------------------------------------------------

  def model_config(self) -> ml_collections.ConfigDict:
    m = ml_collections.ConfigDict()
    # Width of the codes Enc(x) and CG(z, s) (the paper: "code size"; see the config).
    m.code_dim = 100
    # Enc (Table A.1): conv3x3-o<stem_features>-s<stem_stride>-relu, then one
    # residual block per entry (conv3x3 widths, first conv's stride), average
    # pooling over the remaining map, fc-o<encoder_fc>-bn-relu, fc-o<code_dim>.
    m.encoder_stem_features = 64
    m.encoder_stem_stride = 2
    m.encoder_block_features = (64, 128, 256, 512)
    m.encoder_block_strides = (1, 2, 2, 2)
    m.encoder_fc = 200
    # Dec (Table A.1): fc to a <base_side>^2 x <base_features> map (bn-relu),
    # an up-sampling residual block (x2) per entry, conv3x3-o<channels>-tanh.
    m.decoder_base_side = 4
    m.decoder_base_features = 512
    m.decoder_block_features = (256, 128, 64)
    # CG (Table A.2): fc-o<code_generator_hidden>-bn-relu, fc-o<code_dim>-bn.
    m.code_generator_hidden = 200
    # D_C (Table A.3): lrelu fc layers, then fc-o1.
    m.code_disc_hidden = (1000, 500, 200)
    # D_I/Q (Table A.3): a 4x4 stride-2 lrelu conv per entry (BN on all but
    # the first), then fc-o1 (D_I) and fc-o<K> (Q) on the flattened last map.
    m.image_disc_features = (64, 128, 256)
    m.leaky_slope = 0.2
    # Running averages: stat <- momentum * stat + (1 - momentum) * batch stat.
    m.batch_norm_momentum = 0.9
    # L_rec on D_I's features ('perceptual', Eq. 6) or on pixels ('pixel': the
    # MSE of Table 3's ablation B).
    m.reconstruction = 'perceptual'
    # lambda of Algorithm 1: the decoder's weight on L_rec (the encoder's is 1).
    m.rec_decoder_weight = 1.0
    # The encoder's weight on its "fool D_C" term (1 in Algorithm 1).
    m.code_adversarial_weight = 1.0
    # Whether the prior improvement phase also updates Dec (footnote 2; False
    # is Table 3's ablation C).
    m.prior_phase_updates_decoder = True
    # 'both' or 'alternate': how Algorithm 1's two phases map onto one step
    # (module docstring).
    m.phase_schedule = 'both'
    return m

  def validate(self, config: ml_collections.ConfigDict, need: method_lib.Need) -> None:
    m, c, d = config.model, config.codes, config.dataset
    categorical = tuple(c.categorical)
    need(len(categorical) == 1,
         f'config.codes.categorical={categorical}: the CG-AAE has exactly one label variable s; '
         'give one Cat code, (K,).')
    need(c.num_continuous == 0,
         f'config.codes.num_continuous={c.num_continuous}: CG takes [z, one-hot s] only; set it '
         'to 0.')
    need(c.noise_dim >= 1,
         f'config.codes.noise_dim={c.noise_dim}: the width of CG\'s Gaussian input z; set it to '
         '>= 1 (the paper: 90).')
    for name in ('code_dim', 'encoder_stem_features', 'encoder_stem_stride', 'encoder_fc',
                 'decoder_base_side', 'decoder_base_features', 'code_generator_hidden'):
      value = m[name]
      need(isinstance(value, int) and value > 0,
           f'config.model.{name}={value!r} must be a positive int.')
    for name in ('encoder_block_features', 'encoder_block_strides', 'decoder_block_features',
                 'code_disc_hidden', 'image_disc_features'):
      value = m[name]
      need(isinstance(value, (tuple, list)) and len(value) > 0 and
           all(isinstance(v, int) and v > 0 for v in value),
           f'config.model.{name}={value!r}: must be a non-empty sequence of positive ints.')
    need(len(m.encoder_block_features) == len(m.encoder_block_strides),
         f'config.model.encoder_block_strides={tuple(m.encoder_block_strides)} needs one stride '
         f'per encoder block ({len(m.encoder_block_features)}).')
    need(0 <= m.leaky_slope < 1, f'config.model.leaky_slope={m.leaky_slope} must be in [0, 1).')
    need(0 <= m.batch_norm_momentum < 1,
         f'config.model.batch_norm_momentum={m.batch_norm_momentum} must be in [0, 1).')
    need(m.reconstruction in RECONSTRUCTIONS,
         f'config.model.reconstruction={m.reconstruction!r} must be one of {RECONSTRUCTIONS}.')
    need(m.phase_schedule in PHASE_SCHEDULES,
         f'config.model.phase_schedule={m.phase_schedule!r} must be one of {PHASE_SCHEDULES}.')
    for name in ('rec_decoder_weight', 'code_adversarial_weight'):
      need(m[name] >= 0, f'config.model.{name}={m[name]} must be >= 0.')
    # Geometry: every stride-2 layer must see an even side, and the decoder
    # must rebuild the image size.
    reduction = m.encoder_stem_stride
    for s in m.encoder_block_strides:
      reduction *= s
    need(d.image_size % reduction == 0,
         f'config.dataset.image_size={d.image_size} must be a multiple of {reduction} (the '
         'encoder\'s total stride).')
    built = m.decoder_base_side * 2 ** len(m.decoder_block_features)
    need(built == d.image_size,
         f'config.model.decoder_base_side={m.decoder_base_side} doubled '
         f'{len(m.decoder_block_features)} times is {built}, not '
         f'config.dataset.image_size={d.image_size}.')
    factor = 2 ** len(m.image_disc_features)
    need(d.image_size % factor == 0,
         f'config.dataset.image_size={d.image_size} must be a multiple of {factor} (D_I halves '
         f'it in each of {len(m.image_disc_features)} convs).')

  # --- Networks and state ----------------------------------------------------

  def build_models(self, config: ml_collections.ConfigDict) -> CGAAEModels:
    m = config.model
    momentum = m.batch_norm_momentum
    num_clusters = latent.CodeLayout.from_config(config).categorical[0]
    return CGAAEModels(
        encoder=Encoder(stem_features=m.encoder_stem_features, stem_stride=m.encoder_stem_stride,
                        block_features=tuple(m.encoder_block_features),
                        block_strides=tuple(m.encoder_block_strides), fc=m.encoder_fc,
                        code_dim=m.code_dim, batch_norm_momentum=momentum),
        decoder=Decoder(base_side=m.decoder_base_side, base_features=m.decoder_base_features,
                        block_features=tuple(m.decoder_block_features),
                        out_channels=config.dataset.channels, batch_norm_momentum=momentum),
        code_generator=CodeGenerator(hidden=m.code_generator_hidden, code_dim=m.code_dim,
                                     batch_norm_momentum=momentum),
        disc_code=CodeDiscriminator(hidden=tuple(m.code_disc_hidden),
                                    leaky_slope=m.leaky_slope),
        disc_image=ImageDiscriminatorQ(features=tuple(m.image_disc_features),
                                       num_clusters=num_clusters, leaky_slope=m.leaky_slope,
                                       batch_norm_momentum=momentum))

  def init_state(self, key: jax.Array, config: ml_collections.ConfigDict,
                 models: CGAAEModels) -> CGAAEState:
    layout = self.code_layout(config)
    k_enc, k_dec, k_cg, k_dc, k_di, k_rng = jax.random.split(key, 6)
    size, channels, code_dim = (config.dataset.image_size, config.dataset.channels,
                                config.model.code_dim)
    image = jnp.zeros((1, size, size, channels))
    code = jnp.zeros((1, code_dim))

    def create(module, k, x, network):
      return state_lib.network_state(module, module.init(k, x, train=False), config, network)

    dc_params = models.disc_code.init(k_dc, code)['params']
    return CGAAEState(
        step=jnp.zeros((), jnp.int32),
        rng=k_rng,
        enc=create(models.encoder, k_enc, image, 'autoencoder'),
        dec=create(models.decoder, k_dec, code, 'autoencoder'),
        cg=create(models.code_generator, k_cg, jnp.zeros((1, layout.input_dim)), 'generator'),
        disc_code=train_state.TrainState.create(
            apply_fn=models.disc_code.apply, params=dc_params,
            tx=state_lib.make_optimizer(config, 'discriminator')),
        disc_image=create(models.disc_image, k_di, image, 'discriminator'),
    )

  # --- Training --------------------------------------------------------------

  def train_step(self, state: CGAAEState, batch: dict[str, jax.Array], *,
                 config: ml_collections.ConfigDict) -> tuple[CGAAEState, method_lib.Metrics]:
    return _step(state, batch['image'], config, self.code_layout(config))

  # --- What evaluation and the figures need ----------------------------------

  def eval_outputs(self, state: CGAAEState, images: jax.Array) -> dict[str, Any]:
    """z = Enc(x), the cluster logits Q(s | x) on the real image, recon = Dec(Enc(x))."""
    code = _infer(state.enc, images)
    return {'z': code, 'cat_logits': tuple(_infer(state.disc_image, images)['cat_logits']),
            'recon': _infer(state.dec, code)}

  def generate(self, state: CGAAEState, codes: latent.Codes,
               layout: latent.CodeLayout) -> jax.Array:
    """Dec(CG([z, one-hot s])) in inference mode."""
    return _infer(state.dec, self.generated_latents(state, codes, layout))

  def generated_latents(self, state: CGAAEState, codes: latent.Codes,
                        layout: latent.CodeLayout) -> jax.Array:
    """The learned prior's codes CG([z, one-hot s]) (inference mode)."""
    return _infer(state.cg, latent.generator_input(codes, layout))


# --- The two phases and the combined step ---------------------------------------


class _AAEPhase(NamedTuple):
  disc_code: train_state.TrainState   # D_C after its update.
  enc_grads: Any                      # grad of code_adversarial_weight L^C_GAN + L_rec.
  dec_grads: Any                      # rec_decoder_weight * grad L_rec.
  enc_stats: Any
  dec_stats: Any
  metrics: dict[str, jax.Array]


class _PriorPhase(NamedTuple):
  disc_image: state_lib.AutoencoderState   # D_I/Q after its update.
  cg_grads: Any                            # grad of L^I_GAN + lambda_I L_I.
  dec_grads: Any                           # the same (zeros if the phase leaves Dec alone).
  cg_stats: Any
  dec_stats: Any
  metrics: dict[str, jax.Array]


def perceptual_features(disc_image: state_lib.AutoencoderState, images: jax.Array) -> jax.Array:
  """F(images): D_I's last conv activation, inference mode (the fixed metric of Eq. 6)."""
  return _infer(disc_image, images)['features']


def _aae_phase(state: CGAAEState, images: jax.Array, key: jax.Array,
               config: ml_collections.ConfigDict, layout: latent.CodeLayout) -> _AAEPhase:
  """D_C's update, and Enc's and Dec's gradients, with CG and D_I fixed (Fig. 3(b))."""
  m, lc = config.model, config.loss
  n = images.shape[0]
  k_codes, k_real, k_fake = jax.random.split(key, 3)
  codes = latent.sample(k_codes, layout, n)
  # CG is fixed here: batch statistics (as CG runs when trained), running averages left alone.
  prior_code, _ = state_lib.train_forward(state.cg, state.cg.params,
                                             latent.generator_input(codes, layout))

  # Enc's forward once; its VJP serves both of its terms below.
  code, enc_vjp, enc_stats = jax.vjp(
      lambda p: state_lib.train_forward(state.enc, p, images), state.enc.params,
      has_aux=True)
  real_targets, fake_targets = gan.discriminator_targets(k_real, k_fake, n, lc)
  new_dc, d_loss, real_prob, fake_prob = gan.discriminator_update(
      state.disc_code, jax.lax.stop_gradient(prior_code), jax.lax.stop_gradient(code),
      real_targets, fake_targets)

  perceptual = m.reconstruction == 'perceptual'
  target = perceptual_features(state.disc_image, images) if perceptual else images

  def loss_fn(code_out, dec_params):
    recon, dec_stats = state_lib.train_forward(state.dec, dec_params, code_out)
    g_code = gan.generator_loss(new_dc.apply_fn({'params': new_dc.params}, code_out))
    rec = reconstruction.reconstruction_loss(
        target, perceptual_features(state.disc_image, recon) if perceptual else recon)
    pixel_mse = reconstruction.reconstruction_loss(images, jax.lax.stop_gradient(recon))
    metrics = {'g_code_loss': g_code, 'rec_loss': rec, 'pixel_mse': pixel_mse}
    return m.code_adversarial_weight * g_code + rec, (metrics, dec_stats)

  (_, (metrics, dec_stats)), (code_grads, dec_grads) = jax.value_and_grad(
      loss_fn, argnums=(0, 1), has_aux=True)(code, state.dec.params)
  (enc_grads,) = enc_vjp(code_grads)
  # L^C_GAN does not reach Dec, so its gradient here is grad L_rec; Algorithm 1 scales it.
  dec_grads = jax.tree.map(lambda g: m.rec_decoder_weight * g, dec_grads)
  metrics.update(d_code_loss=d_loss, d_code_real_prob=real_prob, d_code_fake_prob=fake_prob)
  return _AAEPhase(new_dc, enc_grads, dec_grads, enc_stats, dec_stats, metrics)


def _prior_phase(state: CGAAEState, images: jax.Array, key: jax.Array,
                 config: ml_collections.ConfigDict, layout: latent.CodeLayout,
                 dec_stats: Any) -> _PriorPhase:
  """D_I/Q's update, and CG's and Dec's gradients, with Enc fixed (Fig. 3(a)).

  `dec_stats` are Dec's running statistics to continue from (those after the
  AAE phase's forward, in the 'both' schedule).
  """
  m, lc = config.model, config.loss
  n = images.shape[0]
  k_codes, k_real, k_fake = jax.random.split(key, 3)
  codes = latent.sample(k_codes, layout, n)
  g_input = latent.generator_input(codes, layout)

  def generate_fn(cg_params, dec_params):
    prior_code, cg_stats = state_lib.train_forward(state.cg, cg_params, g_input)
    fake, new_dec_stats = state_lib.train_forward(state.dec, dec_params, prior_code,
                                                      batch_stats=dec_stats)
    return fake, (cg_stats, new_dec_stats)

  # Dec(CG(.)) once: D_I's fake batch, and its VJP for CG's and Dec's update.
  fake, gen_vjp, (cg_stats, new_dec_stats) = jax.vjp(
      generate_fn, state.cg.params, state.dec.params, has_aux=True)
  real_targets, fake_targets = gan.discriminator_targets(k_real, k_fake, n, lc)

  def mi_loss(out):
    """lambda_I L_I of D_I/Q's outputs on the fakes, and L_I (a metric)."""
    mi = info.categorical_mi_loss(out['cat_logits'], codes.categorical)
    return lc.lambda_disc * mi, {'mi_cat_loss': mi}

  new_di, metrics = gan.batchnorm_discriminator_update(
      state.disc_image, images, jax.lax.stop_gradient(fake), real_targets, fake_targets, mi_loss,
      tag='_image')
  # CG and Dec against the updated D_I/Q (its statistics unmoved: not its step).
  g_loss, fake_grads = gan.generator_grads(new_di, fake, lambda out: mi_loss(out)[0])
  cg_grads, dec_grads = gen_vjp(fake_grads)
  if not m.prior_phase_updates_decoder:
    dec_grads = _zeros_like(dec_grads)
  metrics['g_image_loss'] = g_loss
  return _PriorPhase(new_di, cg_grads, dec_grads, cg_stats, new_dec_stats, metrics)


def _apply(net: state_lib.AutoencoderState, grads: Any, batch_stats: Any):
  return net.apply_gradients(grads=grads, batch_stats=batch_stats)


def _step(state: CGAAEState, images: jax.Array, config: ml_collections.ConfigDict,
          layout: latent.CodeLayout) -> tuple[CGAAEState, method_lib.Metrics]:
  """The combined update (module docstring); pure, draws from fold_in(rng, step).

  The AAE phase draws from the first half of split(fold_in(rng, step)), the
  prior phase from the second, in both schedules.
  """
  k_aae, k_prior = jax.random.split(jax.random.fold_in(state.rng, state.step))

  def aae_only(state):
    a = _aae_phase(state, images, k_aae, config, layout)
    new = state.replace(enc=_apply(state.enc, a.enc_grads, a.enc_stats),
                        dec=_apply(state.dec, a.dec_grads, a.dec_stats), disc_code=a.disc_code)
    return new, {**a.metrics, **{k: jnp.zeros((), jnp.float32) for k in PRIOR_METRICS}}

  def prior_only(state):
    p = _prior_phase(state, images, k_prior, config, layout, state.dec.batch_stats)
    new = state.replace(cg=_apply(state.cg, p.cg_grads, p.cg_stats),
                        dec=_apply(state.dec, p.dec_grads, p.dec_stats), disc_image=p.disc_image)
    return new, {**{k: jnp.zeros((), jnp.float32) for k in AAE_METRICS}, **p.metrics}

  if config.model.phase_schedule == 'alternate':
    new_state, metrics = jax.lax.cond(state.step % 2 == 0, aae_only, prior_only, state)
  else:
    a = _aae_phase(state, images, k_aae, config, layout)
    p = _prior_phase(state, images, k_prior, config, layout, a.dec_stats)
    dec_grads = jax.tree.map(jnp.add, a.dec_grads, p.dec_grads)
    new_state = state.replace(enc=_apply(state.enc, a.enc_grads, a.enc_stats),
                              dec=_apply(state.dec, dec_grads, p.dec_stats),
                              cg=_apply(state.cg, p.cg_grads, p.cg_stats),
                              disc_code=a.disc_code, disc_image=p.disc_image)
    metrics = {**a.metrics, **p.metrics}
  return new_state.replace(step=state.step + 1), metrics


METHOD = CGAAE()
