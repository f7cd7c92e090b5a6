"""The beta-VAE (Higgins et al. 2017) with lgae's conv encoder and decoder.

A VAE whose KL term is weighted by beta:

    loss = E_x[ -log p(x | z) ] + beta * E_x[ KL(q(z | x) || N(0, I)) ],
    q(z | x) = N(mean(x), diag(exp(log_var(x)))),  z = mean + exp(log_var / 2) * eps.

Networks: `models.Encoder` (strided convs, then fc) with 2 * z_dim outputs,
split as [mean | log-variance] (the first z_dim columns are the mean, the last
z_dim the log-variance of each coordinate); a linear fc(model.decoder_fc) and
`models.Decoder` (relu, bilinear upsampling, convs, BatchNorm, tanh) map z to
an image in [-1, 1] (`ConvAutoencoder` says why the fc is there). The
widths and the image geometry come from `config.model`, with the same field
names as the LatentGAN-AE's (configs/common.py). Both networks share one
Adam (`state.AutoencoderState`, which also carries the BatchNorm statistics).

Reconstruction term (`config.model.reconstruction`), summed over pixels and
averaged over the batch, so that beta weighs it against a KL summed over
the z coordinates (the VAE's ELBO, per image):

  'bernoulli': -log Bernoulli(x01 | p), x01 = (x + 1) / 2 in [0, 1] and
     p = (Dec(z) + 1) / 2. The decoder ends in tanh(a), and
     (tanh(a) + 1) / 2 = sigmoid(2a), so the Bernoulli logit is exactly 2a:
     the loss is a sigmoid cross-entropy on logits 2a, read from the
     decoder's last conv (no atanh of a saturated tanh, which would give an
     infinite loss or a zero gradient on confidently wrong pixels). This is
     what the beta-VAE paper and Rubenstein et al. (2018) use on the binary
     dSprites images.
  'mse': the squared error sum_pixels (x - Dec(z))^2 (a Gaussian decoder of
     fixed variance 1/2, up to a constant), for non-binary images.

Evaluation reads the posterior mean as the representation z (what the
BetaVAE disentanglement metric scores); `generate` decodes prior draws: the
code layout is noise_dim = z_dim, no Cat and no U codes.

This module also holds the pieces lgae's other VAE-like methods (`wae`) share:
the Bernoulli/MSE reconstruction term, the decoder's pre-tanh capture and the
encoder/decoder config fields and their checks.
"""

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from lgae.core import latent
from lgae.nets import conv
from lgae.core import state as state_lib
from lgae.core import method as method_lib

# Values of config.model.reconstruction.
RECONSTRUCTIONS = ('bernoulli', 'mse')
# The LatentGAN-AE's config.model fields that the conv encoder and decoder use.
CONV_AUTOENCODER_FIELDS = ('latent_dim', 'encoder_features', 'encoder_kernel', 'encoder_stride',
                           'decoder_upsample', 'decoder_features', 'decoder_kernel',
                           'batch_norm_momentum', 'decoder_upsample_conv')
# (lambda_disc / lambda_cont weigh Q's terms and are simply unused by these
# autoencoders; the LatentGAN-AE's other loss terms are refused in validation.)


# -----------------------------------------------------------------------------
# Shared by the conv VAE-like methods (this one and `wae`).
# -----------------------------------------------------------------------------


def conv_autoencoder_config(latent_dim: int) -> ml_collections.ConfigDict:
  """The encoder/decoder fields of `config.model`, named as the LatentGAN-AE's.

  Defaults are the LatentGAN-AE's MNIST table (configs/common.py); dataset
  configs overwrite them with their own table.

  Args:
    latent_dim: the width of z (the encoder's fc output is sized by each
      method from it).
  """
  m = ml_collections.ConfigDict()
  # z width: the prior N(0, I) lives in R^latent_dim.
  m.latent_dim = latent_dim
  # Encoder: one stride-2 conv + relu per entry ("c4-o16-s2-r"), then fc.
  m.encoder_features = (16, 32, 64, 128, 128)
  m.encoder_kernel = 4
  m.encoder_stride = 2
  # Decoder: relu(z) as a 1x1 map, then per entry bilinear-upsample(factor)
  # -> conv3x3(features) -> BatchNorm -> relu; a last upsample -> conv3x3 -> tanh.
  m.decoder_upsample = (4, 2, 2, 2)
  m.decoder_features = (128, 64, 32)
  m.decoder_kernel = 3
  m.batch_norm_momentum = 0.9
  # 'auto' | 'project_first' | 'upsample_first': the same function either
  # way, only speed differs (configs/common.py).
  m.decoder_upsample_conv = 'auto'
  # Not a LatentGAN-AE field: a linear fc from z to this width before the
  # decoder's relu (see ConvAutoencoder: without it the decoder cannot read
  # negative coordinates of z); 0 = none. 256 is our choice, the width of
  # the fc layers that open the usual conv VAE decoders on dSprites.
  m.decoder_fc = 256
  # 'bernoulli' (cross-entropy on the decoder's logits; binary images such
  # as dSprites) or 'mse' (see `reconstruction_loss`).
  m.reconstruction = 'bernoulli'
  return m


def validate_conv_autoencoder(config: ml_collections.ConfigDict, need: method_lib.Need,
                              method: str) -> None:
  """The checks every conv encoder/decoder method needs (`method` names it in messages).

  The joint schedule, no LatentGAN-AE loss terms, no Cat or U codes, the code
  width equal to z's, and the image geometry: the encoder must reduce the
  image to 1x1 and the decoder rebuild it (`latentgan_ae.validate_conv_autoencoder_geometry`).
  """
  m, c = config.model, config.codes
  need(config.schedule == 'joint',
       f"config.schedule={config.schedule!r}: the {method} trains encoder and decoder "
       "together on every batch and has no latent GAN for a second stage; set it to 'joint'.")
  method_lib.refuse_latentgan_loss_terms(config, need, method)
  categorical = tuple(c.categorical)
  need(len(categorical) == 0,
       f'config.codes.categorical={categorical}: the {method} has no categorical code (its '
       'prior is N(0, I) on z); set it to ().')
  need(c.num_continuous == 0,
       f'config.codes.num_continuous={c.num_continuous}: the {method} has no U(-1, 1) codes; '
       'set it to 0.')
  need(c.noise_dim == m.latent_dim,
       f'config.codes.noise_dim={c.noise_dim}: generate() decodes prior draws of z, so it must '
       f'equal config.model.latent_dim={m.latent_dim}.')
  need(c.get('noise', 'normal') == 'normal',
       f"config.codes.noise={c.get('noise')!r}: the {method}'s prior is N(0, I); set it to "
       "'normal'.")

  need(m.decoder_fc >= 0, f'config.model.decoder_fc={m.decoder_fc} must be >= 0 (0: none).')
  need(m.reconstruction in RECONSTRUCTIONS,
       f'config.model.reconstruction={m.reconstruction!r} must be one of {RECONSTRUCTIONS}.')
  conv.validate_geometry(config, need)


class ConvAutoencoder(nn.Module):
  """lgae's conv encoder and decoder in one module, with a linear layer in between.

  `models.Decoder` starts with relu(z): fine for the LatentGAN-AE, whose
  decoder reads a free code, but under an N(0, I) prior it would map every
  negative coordinate to 0, so that half of each coordinate's range could not
  be decoded (z_i = -1 and z_i = -2 would give the same image). A linear
  fc(decoder_fc) before it (the fc-relu that opens the beta-VAE's and the
  usual conv VAEs' decoders) lets the decoder read all of z. decoder_fc = 0
  feeds z to `models.Decoder` directly, as the LatentGAN-AE does.

  Attributes:
    encoder: `models.Encoder` (its fc width is the method's).
    decoder: `models.Decoder`.
    decoder_fc: width of the linear layer from z to the decoder's input; 0: none.
  """

  encoder: conv.Encoder
  decoder: conv.Decoder
  decoder_fc: int = 0

  def setup(self):
    if self.decoder_fc > 0:
      self.decoder_input = nn.Dense(self.decoder_fc)

  def encode(self, images: jax.Array) -> jax.Array:
    return self.encoder(images)

  def decode(self, z: jax.Array, *, train: bool = False) -> jax.Array:
    """z [N, latent_dim] -> images [N, H, W, C] in [-1, 1]."""
    if self.decoder_fc > 0:
      z = self.decoder_input(z)
    return self.decoder(z, train=train)

  def __call__(self, images: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
    """Returns (z = Enc(x), Dec(z))."""
    z = self.encode(images)
    return z, self.decode(z, train=train)


def is_decoder_output_conv(module: nn.Module, method_name: str) -> bool:
  """capture_intermediates filter: the decoder's last conv, whose output a gives Dec = tanh(a).

  Used to read the Bernoulli logits 2a without changing `models.Decoder`.
  """
  return method_name == '__call__' and module.name == 'conv_out'


def pre_tanh_output(intermediates: Any) -> jax.Array:
  """The decoder's last conv output a (Dec = tanh(a)) from captured intermediates."""
  return intermediates['decoder']['conv_out']['__call__'][0]


def reconstruction_loss(images: jax.Array, recon: jax.Array, pre_tanh: jax.Array,
                        kind: str) -> jax.Array:
  """-log p(x | z) up to a constant: summed over pixels, averaged over the batch.

  Args:
    images: [N, H, W, C] targets in [-1, 1].
    recon: [N, H, W, C] the decoder's output tanh(pre_tanh).
    pre_tanh: [N, H, W, C] the decoder's last conv output (before tanh).
    kind: 'bernoulli' (cross-entropy of (x + 1) / 2 under p = sigmoid(2 *
      pre_tanh) = (recon + 1) / 2) or 'mse' (sum of (x - recon)^2).
  """
  if kind == 'bernoulli':
    per_pixel = optax.sigmoid_binary_cross_entropy(2.0 * pre_tanh, (images + 1.0) / 2.0)
  elif kind == 'mse':
    per_pixel = jnp.square(images - recon)
  else:
    raise ValueError(f'Unknown reconstruction {kind!r}; use one of {RECONSTRUCTIONS}.')
  return jnp.mean(jnp.sum(per_pixel, axis=(1, 2, 3)))


def decode_images(state: Any, z: jax.Array) -> jax.Array:
  """Dec(z) in inference mode (BatchNorm running averages) for any state with `ae`."""
  variables = {'params': state.ae.params, 'batch_stats': state.ae.batch_stats}
  return state.ae.apply_fn(variables, z, method='decode')


# -----------------------------------------------------------------------------
# The beta-VAE.
# -----------------------------------------------------------------------------


def gaussian_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """KL(N(mean, diag(exp(log_var))) || N(0, I)) per row ([N, D] -> [N]).

  The closed form 0.5 * sum_d (exp(log_var) + mean^2 - 1 - log_var).
  """
  return 0.5 * jnp.sum(jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var, axis=-1)


class VAEAutoencoder(ConvAutoencoder):
  """Gaussian encoder q(z | x) and decoder in one module (one optimiser).

  The encoder has 2 * z_dim outputs, [mean | log-variance].

  Attributes:
    z_dim: the width of z.
  """

  z_dim: int = 0

  def encode(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns (mean, log_var), each [N, z_dim]: the encoder's fc output split in two."""
    stats = self.encoder(images)
    return stats[:, :self.z_dim], stats[:, self.z_dim:]

  def __call__(self, images: jax.Array, eps: jax.Array, *, train: bool
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Returns (mean, log_var, Dec(mean + exp(log_var / 2) * eps)).

    eps ~ N(0, I) is an argument, not drawn here, so that the caller decides
    the key (fold_in(rng, step)) and eps = 0 decodes the posterior mean.
    """
    mean, log_var = self.encode(images)
    z = mean + jnp.exp(0.5 * log_var) * eps
    return mean, log_var, self.decode(z, train=train)


class BetaVAEState(flax.struct.PyTreeNode):
  """Everything that changes during beta-VAE training.

  Attributes:
    step: int32 scalar, the number of updates done.
    rng: the base PRNG key (raw uint32[2]); step `s` draws eps from fold_in(rng, s).
    ae: encoder+decoder parameters, Adam state and BatchNorm statistics.
  """

  step: jax.Array
  rng: jax.Array
  ae: state_lib.AutoencoderState


class BetaVAE(method_lib.Method):
  """Higgins et al.'s beta-VAE: reconstruction + beta * KL(q(z|x) || N(0, I))."""

  name = 'beta_vae'
  state_type = BetaVAEState
  has_decoder = True
  decodes_representation = True

  def model_config(self) -> ml_collections.ConfigDict:
    # z width 16: Rubenstein et al. (2018) use 16 on dSprites for both the
    # beta-VAE and the WAE; the beta-VAE paper used 10.
    m = conv_autoencoder_config(latent_dim=16)
    # Weight of the KL term. The beta-VAE paper's dSprites experiments use
    # beta = 4 (as far as we recall, with its 10-d latent); Rubenstein et al.
    # sweep beta in {1, 3, 10, 20, 30, 40, 50, 75, 100}. beta = 1 is the VAE.
    m.beta = 4.0
    return m

  def validate(self, config: ml_collections.ConfigDict, need: method_lib.Need) -> None:
    validate_conv_autoencoder(config, need, 'beta-VAE')
    beta = config.model.get('beta', 0.0)
    need(beta >= 0, f'config.model.beta={beta} must be >= 0 (0: a plain autoencoder with '
         'noise; 1: the VAE).')

  def build_models(self, config: ml_collections.ConfigDict) -> VAEAutoencoder:
    z_dim = config.model.latent_dim
    encoder, decoder = conv.build_encoder_decoder(config, encoder_outputs=2 * z_dim)
    return VAEAutoencoder(encoder=encoder, decoder=decoder, decoder_fc=config.model.decoder_fc,
                          z_dim=z_dim)

  def init_state(self, key: jax.Array, config: ml_collections.ConfigDict,
                 models: VAEAutoencoder) -> BetaVAEState:
    k_ae, k_rng = jax.random.split(key)
    size, channels = config.dataset.image_size, config.dataset.channels
    variables = models.init(k_ae, jnp.zeros((1, size, size, channels)),
                            jnp.zeros((1, config.model.latent_dim)), train=False)
    return BetaVAEState(
        step=jnp.zeros((), jnp.int32),
        rng=k_rng,
        ae=state_lib.AutoencoderState.create(
            apply_fn=models.apply, params=variables['params'],
            tx=state_lib.make_optimizer(config, 'autoencoder'),
            batch_stats=variables['batch_stats']))

  def train_step(self, state: BetaVAEState, batch: dict[str, jax.Array], *,
                 config: ml_collections.ConfigDict) -> tuple[BetaVAEState, method_lib.Metrics]:
    images = batch['image']
    m = config.model
    eps = jax.random.normal(jax.random.fold_in(state.rng, state.step),
                            (images.shape[0], m.latent_dim), images.dtype)

    def loss_fn(params):
      (mean, log_var, recon), mutated = state.ae.apply_fn(
          {'params': params, 'batch_stats': state.ae.batch_stats}, images, eps, train=True,
          mutable=['batch_stats'], capture_intermediates=is_decoder_output_conv)
      recon_loss = reconstruction_loss(images, recon, pre_tanh_output(mutated['intermediates']),
                                       m.reconstruction)
      kl = jnp.mean(gaussian_kl(mean, log_var))
      total = recon_loss + m.beta * kl
      metrics = {'loss': total, 'recon_loss': recon_loss, 'kl': kl,
                 'posterior_mean_sq': jnp.mean(jnp.square(mean)),
                 'posterior_var': jnp.mean(jnp.exp(log_var))}
      return total, (metrics, mutated['batch_stats'])

    (_, (metrics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.ae.params)
    new_ae = state.ae.apply_gradients(grads=grads).replace(batch_stats=batch_stats)
    return state.replace(step=state.step + 1, ae=new_ae), metrics

  def eval_outputs(self, state: BetaVAEState, images: jax.Array) -> dict:
    variables = {'params': state.ae.params, 'batch_stats': state.ae.batch_stats}
    mean, _ = state.ae.apply_fn(variables, images, method='encode')
    # The reconstruction decodes the posterior mean (no sampling at evaluation).
    return {'z': mean, 'cat_logits': (), 'recon': decode_images(state, mean)}

  def generate(self, state: BetaVAEState, codes: latent.Codes,
               layout: latent.CodeLayout) -> jax.Array:
    return decode_images(state, latent.generator_input(codes, layout))

  def decode_representation(self, state: BetaVAEState, z: jax.Array) -> jax.Array:
    return decode_images(state, z)


METHOD = BetaVAE()
