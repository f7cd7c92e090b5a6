"""The Wasserstein auto-encoder with an MMD penalty (WAE-MMD, Tolstikhin et al. 2018).

    loss = E_x[ c(x, Dec(Enc(x))) ] + lambda_mmd * MMD^2(Q_Z, P_Z),  P_Z = N(0, prior_sigma^2 I),

where Q_Z is the aggregated posterior, the distribution of z = Enc(x) over
the data. Unlike the (beta-)VAE, nothing asks each image's code to look like
the prior; only the batch of codes as a whole is compared with a batch of
prior draws, by the unbiased MMD estimator with the inverse multiquadratics
kernel (`lgae.objectives.mmd.mmd_imq`).

The encoder is deterministic: z = Enc(x), the fc output of `conv.Encoder`
with z_dim outputs. Rubenstein et al. (2018) used random Gaussian encoders
(means squashed by tanh, an L1 penalty on the log-variances) for their
dSprites results; this module is the deterministic WAE-MMD of Tolstikhin et
al. The networks (`lgae.nets.conv_vae`), the reconstruction cost c
(`config.model.reconstruction`, Bernoulli cross-entropy by default, as
Rubenstein et al.; `lgae.objectives.vae`) and the code layout (noise_dim =
z_dim, no Cat, no U codes) are the beta-VAE's.
"""

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from lgae.core import latent
from lgae.core import method as method_lib
from lgae.core import state as state_lib
from lgae.nets import conv, conv_vae
from lgae.objectives import mmd, vae


class WAEState(state_lib.StepState):
  """Everything that changes during WAE training (beyond `StepState`'s step and rng).

  Attributes:
    ae: encoder+decoder parameters, Adam state and BatchNorm statistics.
    prior_sigma: config.model.prior_sigma, kept (static, not a leaf) so that
      `generate`, which gets no config, scales the layout's N(0, I) noise to
      the prior.
  """

  ae: state_lib.AutoencoderState
  prior_sigma: float = flax.struct.field(pytree_node=False, default=1.0)


class WAE(method_lib.Method):
  """Tolstikhin et al.'s WAE-MMD: reconstruction + lambda * MMD(Q_Z, N(0, sigma^2 I))."""

  name = 'wae_mmd'
  state_type = WAEState
  has_decoder = True
  decodes_representation = True

  def model_config(self) -> ml_collections.ConfigDict:
    # z width 16: Rubenstein et al. (2018) on dSprites.
    m = conv_vae.conv_autoencoder_config(latent_dim=16)
    # Weight of the MMD term. The WAE paper: 10 on MNIST, 100 on CelebA (with
    # a squared-L2 cost); Rubenstein et al. do not give theirs. 10 is our
    # choice (see configs/wae_dsprites.py).
    m.lambda_mmd = 10.0
    # The prior N(0, prior_sigma^2 I) and the kernel's C = 2 d prior_sigma^2.
    # The WAE paper: sigma_z^2 = 1 on MNIST, 2 on CelebA; 1 is also the
    # beta-VAE's prior, so the two methods' codes are on one scale.
    m.prior_sigma = 1.0
    return m

  def validate(self, config: ml_collections.ConfigDict, need: method_lib.Need) -> None:
    conv_vae.validate_conv_autoencoder(config, need, 'WAE')
    vae.need_reconstruction(config.model.reconstruction, need)
    m = config.model
    need(m.lambda_mmd >= 0,
         f'config.model.lambda_mmd={m.lambda_mmd} must be >= 0 (0: a plain autoencoder).')
    need(m.prior_sigma > 0, f'config.model.prior_sigma={m.prior_sigma} must be > 0.')
    need(config.batch_size >= 2,
         f'config.batch_size={config.batch_size}: the MMD estimate needs >= 2 codes per batch.')

  def build_models(self, config: ml_collections.ConfigDict) -> conv_vae.ConvAutoencoder:
    encoder, decoder = conv.build_encoder_decoder(config,
                                                  encoder_outputs=config.model.latent_dim)
    return conv_vae.ConvAutoencoder(encoder=encoder, decoder=decoder,
                                    decoder_fc=config.model.decoder_fc)

  def init_state(self, key: jax.Array, config: ml_collections.ConfigDict,
                 models: conv_vae.ConvAutoencoder) -> WAEState:
    k_ae, k_rng = jax.random.split(key)
    return WAEState(step=jnp.zeros((), jnp.int32), rng=k_rng,
                    ae=conv_vae.init_autoencoder(models, k_ae, config),
                    prior_sigma=float(config.model.prior_sigma))

  def train_step(self, state: WAEState, batch: dict[str, jax.Array], *,
                 config: ml_collections.ConfigDict) -> tuple[WAEState, method_lib.Metrics]:
    images = batch['image']
    m = config.model
    prior = m.prior_sigma * jax.random.normal(jax.random.fold_in(state.rng, state.step),
                                              (images.shape[0], m.latent_dim), images.dtype)
    scales = mmd.imq_scales(m.latent_dim, m.prior_sigma)

    def loss_fn(params):
      (z, recon), pre_tanh, batch_stats = conv_vae.train_forward(state.ae, params, images)
      recon_loss = vae.reconstruction_loss(images, recon, pre_tanh, m.reconstruction)
      divergence = mmd.mmd_imq(z, prior, scales)
      total = recon_loss + m.lambda_mmd * divergence
      metrics = {'loss': total, 'recon_loss': recon_loss, 'mmd': divergence,
                 'z_mean_sq': jnp.mean(jnp.square(jnp.mean(z, axis=0))),
                 'z_var': jnp.mean(jnp.var(z, axis=0))}
      return total, (metrics, batch_stats)

    return conv_vae.update(state, loss_fn)

  def eval_outputs(self, state: WAEState, images: jax.Array) -> dict:
    z = conv_vae.encode_images(state, images)
    return {'z': z, 'cat_logits': (), 'recon': conv_vae.decode_images(state, z)}

  def generate(self, state: WAEState, codes: latent.Codes,
               layout: latent.CodeLayout) -> jax.Array:
    # The layout's noise is N(0, I) (lgae.core.latent); the prior is N(0, prior_sigma^2 I).
    return conv_vae.decode_images(state,
                                  state.prior_sigma * latent.generator_input(codes, layout))

  def decode_representation(self, state: WAEState, z: jax.Array) -> jax.Array:
    return conv_vae.decode_images(state, z)   # z is the encoder's output, on Dec's scale.


METHOD = WAE()
