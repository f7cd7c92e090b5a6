"""The unsupervised-clustering adversarial autoencoder (Makhzani et al. 2016, Sec. 6).

The encoder q(y, z | x) maps a flattened image through an MLP trunk to two
heads: a softmax "cluster" variable y over K categories (its logits are kept)
and a linear style variable z. The decoder p(x | y, z) reconstructs the image
from [z, y]. Two adversarial networks shape the two heads' aggregated
posteriors into the priors: D_cat tells one-hot samples of Cat(K) from the
encoder's softmax(y), D_style tells N(0, I) samples from the encoder's z. The
cluster of an image is argmax y; nothing else (no k-means, no labels) is used.

The code layout that `generate` decodes is lgae's usual one (`lgae.latent`):
noise_dim = the style width (the style prior N(0, I)), categorical = (K,),
no U codes, so `latent.generator_input` packs [style, one-hot y], which is the
decoder's input order here too. At training and reconstruction time the
decoder sees [style, softmax(y logits)] instead.

One combined update per batch (lgae's rule), the paper's phases in order:

1. Reconstruction: x_hat = Dec([z, softmax(y)]), MSE (`losses.reconstruction_loss`).
2. Regularisation, discriminators: D_cat on one-hot Cat(K) samples (real) vs
   stop_gradient(softmax(y)) (fake); D_style on N(0, I) samples (real) vs
   stop_gradient(z) (fake); BCE with lgae's noisy labels.
3. Regularisation, generator = the encoder: fool both freshly updated
   discriminators (non-saturating loss), times `model.adversarial_weight`.

(1) and (3) are ONE Adam step on the encoder+decoder with the summed loss (the
decoder gets no gradient from (3)); see `_step` for why. The encoder runs
forward once per step; its VJP serves both terms.
"""

from typing import NamedTuple

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
from flax.training import train_state

from lgae import latent, losses
from lgae import models as models_lib
from lgae import state as state_lib
from lgae.methods import base


class AAEAutoencoder(nn.Module):
  """Encoder q(y, z | x) and decoder p(x | y, z) in one module (one optimiser).

  Attributes:
    encoder_hidden: relu widths of the encoder's trunk.
    decoder_hidden: relu widths of the decoder.
    num_clusters: K, the width of the categorical head.
    style_dim: width of the linear style head (= config.codes.noise_dim).
    image_size: side of the square images.
    channels: image channels.
  """

  encoder_hidden: tuple[int, ...]
  decoder_hidden: tuple[int, ...]
  num_clusters: int
  style_dim: int
  image_size: int
  channels: int

  def setup(self):
    self.trunk = models_lib.MLP(tuple(self.encoder_hidden))
    self.cat_head = nn.Dense(self.num_clusters)
    self.style_head = nn.Dense(self.style_dim)
    self.decoder = models_lib.MLP(tuple(self.decoder_hidden),
                                  self.image_size * self.image_size * self.channels)

  def encode(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns (style z [N, style_dim], cluster logits [N, K])."""
    h = self.trunk(images.reshape(images.shape[0], -1))
    return self.style_head(h), self.cat_head(h)

  def decode(self, code: jax.Array) -> jax.Array:
    """[style, y] ([N, style_dim + K]; y one-hot or a softmax) -> images [N, s, s, C] in [-1, 1]."""
    out = jnp.tanh(self.decoder(code))
    return out.reshape(code.shape[0], self.image_size, self.image_size, self.channels)

  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Returns (style z, cluster logits, Dec([z, softmax(logits)]))."""
    style, logits = self.encode(images)
    return style, logits, self.decode(decoder_code(style, logits))


def decoder_code(style: jax.Array, logits: jax.Array) -> jax.Array:
  """The decoder's training-time input [style, softmax(y)]: soft, so y gets gradients."""
  return jnp.concatenate([style, jax.nn.softmax(logits, axis=-1)], axis=-1)


class Adversary(nn.Module):
  """A relu MLP ending in one real/fake logit per row ([N])."""

  hidden: tuple[int, ...]

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return models_lib.MLP(tuple(self.hidden), 1, name='mlp')(x)[:, 0]


class AAEModels(NamedTuple):
  autoencoder: AAEAutoencoder
  disc_cat: Adversary
  disc_style: Adversary


class AAEState(flax.struct.PyTreeNode):
  """Everything that changes during AAE training.

  Attributes:
    step: int32 scalar, the number of combined updates done.
    rng: the base PRNG key (raw uint32[2]); step `s` draws from fold_in(rng, s).
    ae: encoder+decoder (batch_stats is {}: no BatchNorm in the paper's MLPs).
    disc_cat: D_cat, Cat(K) samples vs softmax(y).
    disc_style: D_style, N(0, I) samples vs the style z.
  """

  step: jax.Array
  rng: jax.Array
  ae: state_lib.AutoencoderState
  disc_cat: train_state.TrainState
  disc_style: train_state.TrainState


def _apply_ae(state: AAEState, images: jax.Array, method=None):
  return state.ae.apply_fn({'params': state.ae.params}, images, method=method)


class AAE(base.Method):
  """Makhzani et al.'s unsupervised-clustering AAE (Sec. 6)."""

  name = 'aae'
  state_type = AAEState
  has_decoder = True

  def model_config(self) -> ml_collections.ConfigDict:
    m = ml_collections.ConfigDict()
    # The paper (Sec. 6): encoder, decoder and discriminator are each two
    # relu layers of 3000 units. The encoder's trunk feeds two heads: the
    # K-way cluster logits (K = config.codes.categorical[0]) and the linear
    # style z (width config.codes.noise_dim, whose prior is N(0, I)); neither
    # width lives here, so that the code layout has one source.
    m.encoder_hidden = (3000, 3000)
    # Decoder: relu MLP from [style z, y] to image_size**2 * channels, then
    # tanh (our images are in [-1, 1]; the paper's in [0, 1] used a sigmoid).
    m.decoder_hidden = (3000, 3000)
    # D_cat and D_style both use these widths, each ending in one logit.
    m.discriminator_hidden = (3000, 3000)
    # Weight of the encoder's "fool D_cat and D_style" term against the
    # reconstruction MSE, in the one combined encoder+decoder step. The paper
    # weighs its phases through separate learning rates instead (ours: one
    # Adam), so 1.0 is our choice, not a paper value.
    m.adversarial_weight = 1.0
    return m

  def validate(self, config: ml_collections.ConfigDict, need: base.Need) -> None:
    m, c = config.model, config.codes
    need(config.schedule == 'joint',
         f"config.schedule={config.schedule!r}: the AAE trains its autoencoder and "
         "discriminators together on every batch; set it to 'joint'.")
    categorical = tuple(c.categorical)
    need(len(categorical) == 1,
         f'config.codes.categorical={categorical}: the AAE has exactly one cluster variable; '
         'give one Cat code, (K,).')
    need(all(isinstance(k, int) and k >= 2 for k in categorical),
         f'config.codes.categorical={categorical}: K must be an int >= 2.')
    need(c.num_continuous == 0,
         f'config.codes.num_continuous={c.num_continuous}: the AAE has no U(-1, 1) codes '
         '(its style prior is the N(0, I) noise block); set it to 0.')
    need(c.noise_dim >= 1,
         f'config.codes.noise_dim={c.noise_dim}: it is the AAE style width; set it to >= 1 '
         '(e.g. 5).')
    base.refuse_latentgan_loss_terms(config, need, 'AAE')
    for name in ('encoder_hidden', 'decoder_hidden', 'discriminator_hidden'):
      widths = m.get(name, ())
      need(isinstance(widths, (tuple, list)) and len(widths) > 0 and
           all(isinstance(w, int) and w > 0 for w in widths),
           f'config.model.{name}={widths!r}: must be a non-empty sequence of positive ints.')
    weight = m.get('adversarial_weight', 1.0)
    need(weight >= 0,
         f'config.model.adversarial_weight={weight}: must be >= 0 (0 turns the AAE into a '
         'plain autoencoder).')

  def build_models(self, config: ml_collections.ConfigDict) -> AAEModels:
    m, layout = config.model, latent.CodeLayout.from_config(config)
    autoencoder = AAEAutoencoder(
        encoder_hidden=tuple(m.encoder_hidden), decoder_hidden=tuple(m.decoder_hidden),
        num_clusters=layout.categorical[0], style_dim=layout.noise_dim,
        image_size=config.dataset.image_size, channels=config.dataset.channels)
    return AAEModels(autoencoder=autoencoder,
                     disc_cat=Adversary(tuple(m.discriminator_hidden)),
                     disc_style=Adversary(tuple(m.discriminator_hidden)))

  def init_state(self, key: jax.Array, config: ml_collections.ConfigDict,
                 models: AAEModels) -> AAEState:
    layout = latent.CodeLayout.from_config(config)
    k_ae, k_cat, k_style, k_rng = jax.random.split(key, 4)
    size, channels = config.dataset.image_size, config.dataset.channels
    ae_params = models.autoencoder.init(k_ae, jnp.zeros((1, size, size, channels)))['params']
    cat_params = models.disc_cat.init(k_cat, jnp.zeros((1, layout.categorical[0])))['params']
    style_params = models.disc_style.init(k_style, jnp.zeros((1, layout.noise_dim)))['params']
    disc_tx = state_lib.make_optimizer(config, 'discriminator')
    return AAEState(
        step=jnp.zeros((), jnp.int32),
        rng=k_rng,
        ae=state_lib.AutoencoderState.create(
            apply_fn=models.autoencoder.apply, params=ae_params,
            tx=state_lib.make_optimizer(config, 'autoencoder'), batch_stats={}),
        disc_cat=train_state.TrainState.create(apply_fn=models.disc_cat.apply,
                                               params=cat_params, tx=disc_tx),
        disc_style=train_state.TrainState.create(apply_fn=models.disc_style.apply,
                                                 params=style_params, tx=disc_tx),
    )

  def train_step(self, state: AAEState, batch: dict[str, jax.Array], *,
                 config: ml_collections.ConfigDict) -> tuple[AAEState, base.Metrics]:
    return _step(state, batch['image'], config, latent.CodeLayout.from_config(config))

  def eval_outputs(self, state: AAEState, images: jax.Array) -> dict:
    style, logits, recon = _apply_ae(state, images)
    return {'z': decoder_code(style, logits), 'cat_logits': (logits,), 'recon': recon}

  def generate(self, state: AAEState, codes: latent.Codes,
               layout: latent.CodeLayout) -> jax.Array:
    return _apply_ae(state, latent.generator_input(codes, layout), method=AAEAutoencoder.decode)


def disc_update(disc: train_state.TrainState, real: jax.Array, fake: jax.Array,
                real_targets: jax.Array, fake_targets: jax.Array):
  """One BCE step of an adversary on [real; fake] (one forward: no batch-dependent layers).

  Returns (new state, loss, mean D(real), mean D(fake)).
  """
  n = real.shape[0]

  def loss_fn(params):
    logits = disc.apply_fn({'params': params}, jnp.concatenate([real, fake], axis=0))
    loss = losses.discriminator_loss(logits[:n], logits[n:], real_targets, fake_targets)
    return loss, (jnp.mean(jax.nn.sigmoid(logits[:n])), jnp.mean(jax.nn.sigmoid(logits[n:])))

  (loss, (real_prob, fake_prob)), grads = jax.value_and_grad(loss_fn, has_aux=True)(disc.params)
  return disc.apply_gradients(grads=grads), loss, real_prob, fake_prob


def _step(state: AAEState, images: jax.Array, config: ml_collections.ConfigDict,
          layout: latent.CodeLayout) -> tuple[AAEState, base.Metrics]:
  """The combined update (module docstring); pure, draws from fold_in(rng, step).

  Phases (1) and (3) are one Adam step on the summed loss
  recon + adversarial_weight * (g_cat + g_style), both evaluated at the
  encoder's current parameters, rather than the paper's two SGD updates per
  batch. Why: lgae keeps one optimiser state per network (one Adam applied
  twice per step would advance its moment estimates twice), the combined
  step stays one forward and one backward pass through the encoder, and the
  relative size of the two phases is `model.adversarial_weight` instead of a
  ratio of learning rates. Consequence: the discriminators (2) see the
  encoder's outputs before this step's reconstruction update, not after it.
  """
  lc = config.loss
  batch_size = images.shape[0]
  num_clusters = layout.categorical[0]
  key = jax.random.fold_in(state.rng, state.step)
  k_prior, k_cat_real, k_cat_fake, k_style_real, k_style_fake = jax.random.split(key, 5)

  # (1)'s forward; its VJP is reused for the encoder+decoder update below.
  (style, logits, recon), ae_vjp = jax.vjp(
      lambda params: state.ae.apply_fn({'params': params}, images), state.ae.params)

  # (2) The priors' samples (the layout's own: style ~ N(0, I), y uniform one-hot).
  prior = latent.sample(k_prior, layout, batch_size)
  real_cat = jax.nn.one_hot(prior.categorical[:, 0], num_clusters, dtype=style.dtype)
  real_style = prior.noise
  labels = lambda k, value, other: losses.noisy_labels(k, (batch_size,), value, other,
                                                       lc.label_flip_prob)
  new_cat, d_cat_loss, d_cat_real, d_cat_fake = disc_update(
      state.disc_cat, real_cat, jax.lax.stop_gradient(jax.nn.softmax(logits, axis=-1)),
      labels(k_cat_real, lc.real_label, lc.fake_label),
      labels(k_cat_fake, lc.fake_label, lc.real_label))
  new_style, d_style_loss, d_style_real, d_style_fake = disc_update(
      state.disc_style, real_style, jax.lax.stop_gradient(style),
      labels(k_style_real, lc.real_label, lc.fake_label),
      labels(k_style_fake, lc.fake_label, lc.real_label))

  # (1) + (3): the loss as a function of the encoder's outputs; the updated
  # discriminators are held fixed. The decoder's output enters only the MSE.
  def ae_loss_fn(outputs):
    style_out, logits_out, recon_out = outputs
    recon_loss = losses.reconstruction_loss(images, recon_out)
    g_cat = losses.generator_loss(
        new_cat.apply_fn({'params': new_cat.params}, jax.nn.softmax(logits_out, axis=-1)))
    g_style = losses.generator_loss(new_style.apply_fn({'params': new_style.params}, style_out))
    total = recon_loss + config.model.adversarial_weight * (g_cat + g_style)
    return total, {'recon_loss': recon_loss, 'g_cat_loss': g_cat, 'g_style_loss': g_style}

  (_, ae_metrics), out_grads = jax.value_and_grad(ae_loss_fn, has_aux=True)(
      (style, logits, recon))
  (ae_grads,) = ae_vjp(out_grads)
  new_ae = state.ae.apply_gradients(grads=ae_grads)

  metrics = {**ae_metrics, 'd_cat_loss': d_cat_loss, 'd_style_loss': d_style_loss,
             'd_cat_real_prob': d_cat_real, 'd_cat_fake_prob': d_cat_fake,
             'd_style_real_prob': d_style_real, 'd_style_fake_prob': d_style_fake}
  new_state = state.replace(step=state.step + 1, ae=new_ae, disc_cat=new_cat,
                            disc_style=new_style)
  return new_state, metrics
