"""The beta-VAE (Higgins et al. 2017) with lgae's conv encoder and decoder.

A VAE whose KL term is weighted by beta:

    loss = E_x[ -log p(x | z) ] + beta * E_x[ KL(q(z | x) || N(0, I)) ],
    q(z | x) = N(mean(x), diag(exp(log_var(x)))),  z = mean + exp(log_var / 2) * eps.

Networks: `conv.Encoder` (strided convs, then fc) with 2 * z_dim outputs,
split as [mean | log-variance] (the first z_dim columns are the mean, the last
z_dim the log-variance of each coordinate); a linear fc(model.decoder_fc) and
`conv.Decoder` (relu, bilinear upsampling, convs, BatchNorm, tanh) map z to
an image in [-1, 1] (`conv_vae.ConvAutoencoder` says why the fc is there).
The widths and the image geometry come from `config.model`, with the same
field names as the LatentGAN-AE's (`conv_vae.conv_autoencoder_config`). Both
networks share one Adam (`AutoencoderState`, which also carries the BatchNorm
statistics).

Reconstruction term (`config.model.reconstruction`,
`lgae.objectives.vae.reconstruction_loss`), summed over pixels and averaged
over the batch, so that beta weighs it against a KL summed over the z
coordinates (the VAE's ELBO, per image): 'bernoulli', the cross-entropy of
the [0, 1] image under the decoder's logits (2x its pre-tanh output), which
the beta-VAE paper and Rubenstein et al. (2018) use on the binary dSprites
images; or 'mse', for non-binary images.

Evaluation reads the posterior mean as the representation z (what the
BetaVAE disentanglement metric scores); `generate` decodes prior draws: the
code layout is noise_dim = z_dim, no Cat and no U codes.
"""

import jax
import jax.numpy as jnp
import ml_collections

from lgae.core import latent
from lgae.core import method as method_lib
from lgae.core import state as state_lib
from lgae.nets import conv, conv_vae
from lgae.objectives import vae


class VAEAutoencoder(conv_vae.ConvAutoencoder):
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


class BetaVAEState(state_lib.StepState):
  """Everything that changes during beta-VAE training (beyond `StepState`'s step and rng).

  Attributes:
    ae: encoder+decoder parameters, Adam state and BatchNorm statistics.
  """

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
    m = conv_vae.conv_autoencoder_config(latent_dim=16)
    # Weight of the KL term. The beta-VAE paper's dSprites experiments use
    # beta = 4 (as far as we recall, with its 10-d latent); Rubenstein et al.
    # sweep beta in {1, 3, 10, 20, 30, 40, 50, 75, 100}. beta = 1 is the VAE.
    m.beta = 4.0
    return m

  def validate(self, config: ml_collections.ConfigDict, need: method_lib.Need) -> None:
    conv_vae.validate_conv_autoencoder(config, need, 'beta-VAE')
    vae.need_reconstruction(config.model.reconstruction, need)
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
    ae = conv_vae.init_autoencoder(models, k_ae, config, jnp.zeros((1, config.model.latent_dim)))
    return BetaVAEState(step=jnp.zeros((), jnp.int32), rng=k_rng, ae=ae)

  def train_step(self, state: BetaVAEState, batch: dict[str, jax.Array], *,
                 config: ml_collections.ConfigDict) -> tuple[BetaVAEState, method_lib.Metrics]:
    images = batch['image']
    m = config.model
    eps = jax.random.normal(jax.random.fold_in(state.rng, state.step),
                            (images.shape[0], m.latent_dim), images.dtype)

    def loss_fn(params):
      (mean, log_var, recon), pre_tanh, batch_stats = conv_vae.train_forward(
          state.ae, params, images, eps)
      recon_loss = vae.reconstruction_loss(images, recon, pre_tanh, m.reconstruction)
      kl = jnp.mean(vae.gaussian_kl(mean, log_var))
      total = recon_loss + m.beta * kl
      metrics = {'loss': total, 'recon_loss': recon_loss, 'kl': kl,
                 'posterior_mean_sq': jnp.mean(jnp.square(mean)),
                 'posterior_var': jnp.mean(jnp.exp(log_var))}
      return total, (metrics, batch_stats)

    return conv_vae.update(state, loss_fn)

  def eval_outputs(self, state: BetaVAEState, images: jax.Array) -> dict:
    mean, _ = conv_vae.encode_images(state, images)
    # The reconstruction decodes the posterior mean (no sampling at evaluation).
    return {'z': mean, 'cat_logits': (), 'recon': conv_vae.decode_images(state, mean)}

  def generate(self, state: BetaVAEState, codes: latent.Codes,
               layout: latent.CodeLayout) -> jax.Array:
    return conv_vae.decode_images(state, latent.generator_input(codes, layout))

  def decode_representation(self, state: BetaVAEState, z: jax.Array) -> jax.Array:
    return conv_vae.decode_images(state, z)


METHOD = BetaVAE()
