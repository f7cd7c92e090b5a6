"""The unsupervised-clustering adversarial autoencoder (Makhzani et al. 2016, Sec. 6).

The encoder q(y, z | x) maps a flattened image through an MLP trunk to two
heads: a softmax "cluster" variable y over K categories (its logits are kept)
and a linear style variable z. The decoder p(x | y, z) reconstructs the image
from [z, y]. Two adversarial networks shape the two heads' aggregated
posteriors into the priors: D_cat tells one-hot samples of Cat(K) from the
encoder's softmax(y), D_style tells N(0, I) samples from the encoder's z. The
cluster of an image is argmax y; nothing else (no k-means, no labels) is used.

The code layout that `generate` decodes is lgae's usual one (`lgae.core.latent`):
noise_dim = the style width (the style prior N(0, I)), categorical = (K,),
no U codes, so `latent.generator_input` packs [style, one-hot y], which is the
decoder's input order here too. At training and reconstruction time the
decoder sees [style, softmax(y logits)] instead.

One combined update per batch (lgae's rule), the paper's phases in order:

1. Reconstruction: x_hat = Dec([z, softmax(y)]), MSE (`reconstruction.reconstruction_loss`).
2. Regularisation, discriminators: D_cat on one-hot Cat(K) samples (real) vs
   stop_gradient(softmax(y)) (fake); D_style on N(0, I) samples (real) vs
   stop_gradient(z) (fake); BCE with lgae's noisy labels.
3. Regularisation, generator = the encoder: fool both freshly updated
   discriminators (non-saturating loss), times `model.adversarial_weight`
   (ramped linearly from 0 over `model.adversarial_warmup_steps`).

How (1) and (3) update the encoder (`model.phase_updates`):

  'separate' (default): as the paper, two updates of the encoder per batch,
     each with its own Adam state: (1) moves encoder+decoder, then (2) and
     (3) run on the encoder's outputs *after* that move, and (3) moves the
     encoder with the regularisation phase's optimiser state
     (`AAEState.reg_opt_state`). Three encoder forwards per step.
  'combined': ONE Adam step on recon + weight * (g_cat + g_style), all at the
     step's starting parameters (one encoder forward; its VJP serves both
     terms). Kept for the record and for checkpoints trained with it.

The cluster head as the paper has it (`model.cluster_logits_norm='none'`)
collapses on MNIST under either schedule, a warm-up of the adversarial
weight or 10x faster discriminators: every row's softmax saturates onto the
same vertex of the simplex within a few hundred updates (D_cat then sits at
its optimum 1/(K+1) on the encoder's outputs); with a 10x slower
regularisation phase it keeps 4 of 32 clusters. The cluster logits of all
rows drift together faster than they separate.
BatchNorm on the logits ('batch_norm', which configs/aae_mnist.py sets) takes
that common mode out and all K clusters stay in use; the probes, one change
at a time, are in experiments/results/mnist/comparison_1206/HYPOTHESES.md.
"""

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from lgae.core import latent
from lgae.core import method as method_lib
from lgae.core import state as state_lib
from lgae.nets import mlp
from lgae.objectives import gan, reconstruction


# model.phase_updates values (module docstring).
PHASE_UPDATES = ('separate', 'combined')
# model.cluster_logits_norm values (AAEAutoencoder).
CLUSTER_LOGITS_NORMS = ('none', 'batch_norm')


class AAEAutoencoder(nn.Module):
  """Encoder q(y, z | x) and decoder p(x | y, z) in one module (one optimiser).

  Attributes:
    encoder_hidden: relu widths of the encoder's trunk.
    decoder_hidden: relu widths of the decoder.
    num_clusters: K, the width of the categorical head.
    style_dim: width of the linear style head (= config.codes.noise_dim).
    image_size: side of the square images.
    channels: image channels.
    cluster_logits_norm: 'none' (the paper) or 'batch_norm': the cluster
      logits are batch-normalised (batch statistics in training, running
      averages in evaluation), so no cluster can gain on every row at once
      (see `model_config`).
  """

  encoder_hidden: tuple[int, ...]
  decoder_hidden: tuple[int, ...]
  num_clusters: int
  style_dim: int
  image_size: int
  channels: int
  cluster_logits_norm: str = 'none'

  def setup(self):
    self.trunk = mlp.MLP(tuple(self.encoder_hidden))
    # No bias before a BatchNorm: its mean subtraction cancels any bias, so the
    # bias's gradient is zero up to round-off, which Adam would turn into
    # lr-sized random steps (and 1- vs N-device runs would drift apart).
    self.cat_head = nn.Dense(self.num_clusters,
                             use_bias=self.cluster_logits_norm != 'batch_norm')
    if self.cluster_logits_norm == 'batch_norm':
      self.cat_norm = nn.BatchNorm(momentum=0.99, epsilon=1e-5)
    self.style_head = nn.Dense(self.style_dim)
    self.decoder = mlp.MLP(tuple(self.decoder_hidden),
                                  self.image_size * self.image_size * self.channels)

  def encode(self, images: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """Returns (style z [N, style_dim], cluster logits [N, K])."""
    h = self.trunk(images.reshape(images.shape[0], -1))
    logits = self.cat_head(h)
    if self.cluster_logits_norm == 'batch_norm':
      logits = self.cat_norm(logits, use_running_average=not train)
    return self.style_head(h), logits

  def decode(self, code: jax.Array) -> jax.Array:
    """[style, y] ([N, style_dim + K]; y one-hot or a softmax) -> images [N, s, s, C] in [-1, 1]."""
    out = jnp.tanh(self.decoder(code))
    return out.reshape(code.shape[0], self.image_size, self.image_size, self.channels)

  def __call__(self, images: jax.Array,
               train: bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Returns (style z, cluster logits, Dec([z, softmax(logits)]))."""
    style, logits = self.encode(images, train)
    return style, logits, self.decode(decoder_code(style, logits))


def decoder_code(style: jax.Array, logits: jax.Array) -> jax.Array:
  """The decoder's training-time input [style, softmax(y)]: soft, so y gets gradients."""
  return jnp.concatenate([style, jax.nn.softmax(logits, axis=-1)], axis=-1)


class Adversary(nn.Module):
  """A relu MLP ending in one real/fake logit per row ([N])."""

  hidden: tuple[int, ...]

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return mlp.MLP(tuple(self.hidden), 1, name='mlp')(x)[:, 0]


class AAEModels(NamedTuple):
  autoencoder: AAEAutoencoder
  disc_cat: Adversary
  disc_style: Adversary


class AAEState(state_lib.StepState):
  """Everything that changes during AAE training (beyond `StepState`'s step and rng).

  Attributes:
    ae: encoder+decoder (batch_stats is {}: no BatchNorm in the paper's MLPs;
      the cluster logits' BatchNorm under model.cluster_logits_norm).
    disc_cat: D_cat, Cat(K) samples vs softmax(y).
    disc_style: D_style, N(0, I) samples vs the style z.
    reg_opt_state: the Adam state of the encoder's regularisation-phase
      updates under `model.phase_updates='separate'`; None (no leaves, so
      the pytree and its checkpoints are unchanged) under 'combined'.
  """

  ae: state_lib.AutoencoderState
  disc_cat: train_state.TrainState
  disc_style: train_state.TrainState
  reg_opt_state: Any = None


def _apply_ae(state: AAEState, images: jax.Array, method=None):
  """Evaluation-mode forward (running BatchNorm averages, if any)."""
  return state_lib.apply(state.ae, images, method=method)


class AAE(method_lib.Method):
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
    # How the reconstruction and regularisation phases update the encoder
    # (module docstring): 'separate' (the paper's two updates per batch, each
    # with its own Adam state) or 'combined' (one Adam step on the summed
    # loss; lgae's earlier step, kept for the record).
    m.phase_updates = 'separate'
    # Weight of the encoder's "fool D_cat and D_style" term. Under 'combined'
    # it is the ratio to the reconstruction MSE in the one step; under
    # 'separate' the phase has its own Adam, which is invariant to a constant
    # scale, so the weight only matters through the warm-up below. The paper
    # weighs its phases through separate learning rates instead; 1.0 is our
    # choice, not a paper value.
    m.adversarial_weight = 1.0
    # Learning rate of the encoder's regularisation-phase Adam under
    # 'separate' (0: optimizer.learning_rate, the same as the reconstruction
    # phase's). The paper gives its two phases separate learning rates.
    m.regularisation_learning_rate = 0.0
    # 'none' (the paper) or 'batch_norm': BatchNorm on the cluster logits.
    # Not in the paper; lgae's fix of the collapse (module docstring;
    # experiments/docs/comparisons.md, MNIST): batch statistics remove the
    # logits' common mode over a batch, the direction in which every row
    # drifted onto the same vertex of the simplex.
    m.cluster_logits_norm = 'none'
    # Steps over which the adversarial weight ramps linearly from 0 to
    # adversarial_weight (0: no ramp). Not in the paper; a probe of why the
    # combined update collapses (experiments/docs/comparisons.md, MNIST).
    m.adversarial_warmup_steps = 0
    return m

  def validate(self, config: ml_collections.ConfigDict, need: method_lib.Need) -> None:
    m, c = config.model, config.codes
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
    for name in ('encoder_hidden', 'decoder_hidden', 'discriminator_hidden'):
      widths = m.get(name, ())
      need(isinstance(widths, (tuple, list)) and len(widths) > 0 and
           all(isinstance(w, int) and w > 0 for w in widths),
           f'config.model.{name}={widths!r}: must be a non-empty sequence of positive ints.')
    weight = m.get('adversarial_weight', 1.0)
    need(weight >= 0,
         f'config.model.adversarial_weight={weight}: must be >= 0 (0 turns the AAE into a '
         'plain autoencoder).')
    updates = m.get('phase_updates', 'combined')
    need(updates in PHASE_UPDATES,
         f'config.model.phase_updates={updates!r} must be one of {PHASE_UPDATES}.')
    norm = m.get('cluster_logits_norm', 'none')
    need(norm in CLUSTER_LOGITS_NORMS,
         f'config.model.cluster_logits_norm={norm!r} must be one of {CLUSTER_LOGITS_NORMS}.')
    reg_lr = m.get('regularisation_learning_rate', 0.0)
    need(reg_lr >= 0,
         f'config.model.regularisation_learning_rate={reg_lr}: must be >= 0 (0: the '
         'autoencoder\'s optimizer.learning_rate).')
    warmup = m.get('adversarial_warmup_steps', 0)
    need(isinstance(warmup, int) and warmup >= 0,
         f'config.model.adversarial_warmup_steps={warmup!r}: must be an int >= 0 (0: no ramp).')

  def build_models(self, config: ml_collections.ConfigDict) -> AAEModels:
    m, layout = config.model, latent.CodeLayout.from_config(config)
    autoencoder = AAEAutoencoder(
        encoder_hidden=tuple(m.encoder_hidden), decoder_hidden=tuple(m.decoder_hidden),
        num_clusters=layout.categorical[0], style_dim=layout.noise_dim,
        image_size=config.dataset.image_size, channels=config.dataset.channels,
        cluster_logits_norm=m.get('cluster_logits_norm', 'none'))
    return AAEModels(autoencoder=autoencoder,
                     disc_cat=Adversary(tuple(m.discriminator_hidden)),
                     disc_style=Adversary(tuple(m.discriminator_hidden)))

  def init_state(self, key: jax.Array, config: ml_collections.ConfigDict,
                 models: AAEModels) -> AAEState:
    layout = latent.CodeLayout.from_config(config)
    k_ae, k_cat, k_style, k_rng = jax.random.split(key, 4)
    size, channels = config.dataset.image_size, config.dataset.channels
    ae_vars = models.autoencoder.init(k_ae, jnp.zeros((1, size, size, channels)))
    ae_params = ae_vars['params']
    cat_params = models.disc_cat.init(k_cat, jnp.zeros((1, layout.categorical[0])))['params']
    style_params = models.disc_style.init(k_style, jnp.zeros((1, layout.noise_dim)))['params']
    disc_tx = state_lib.make_optimizer(config, 'discriminator')
    # .get: configs saved before phase_updates existed trained 'combined'.
    separate = config.model.get('phase_updates', 'combined') == 'separate'
    return AAEState(
        step=jnp.zeros((), jnp.int32),
        rng=k_rng,
        ae=state_lib.network_state(models.autoencoder, ae_vars, config, 'autoencoder'),
        disc_cat=train_state.TrainState.create(apply_fn=models.disc_cat.apply,
                                               params=cat_params, tx=disc_tx),
        disc_style=train_state.TrainState.create(apply_fn=models.disc_style.apply,
                                                 params=style_params, tx=disc_tx),
        reg_opt_state=regularisation_optimizer(config).init(ae_params) if separate else None,
    )

  def train_step(self, state: AAEState, batch: dict[str, jax.Array], *,
                 config: ml_collections.ConfigDict) -> tuple[AAEState, method_lib.Metrics]:
    layout = latent.CodeLayout.from_config(config)
    if config.model.get('phase_updates', 'combined') == 'separate':
      return _separate_step(state, batch['image'], config, layout)
    return _step(state, batch['image'], config, layout)

  def eval_outputs(self, state: AAEState, images: jax.Array) -> dict:
    style, logits, recon = _apply_ae(state, images)
    return {'z': decoder_code(style, logits), 'cat_logits': (logits,), 'recon': recon}

  def generate(self, state: AAEState, codes: latent.Codes,
               layout: latent.CodeLayout) -> jax.Array:
    return _apply_ae(state, latent.generator_input(codes, layout), method=AAEAutoencoder.decode)


def regularisation_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The Adam of the encoder's regularisation phase under 'separate' (its own learning rate)."""
  reg_lr = config.model.get('regularisation_learning_rate', 0.0)
  o = config.optimizer
  return optax.adam(reg_lr if reg_lr > 0 else o.learning_rate, b1=o.b1, b2=o.b2)


def adversarial_weight(config: ml_collections.ConfigDict, step: jax.Array) -> jax.Array:
  """`model.adversarial_weight`, ramped linearly from 0 over `model.adversarial_warmup_steps`."""
  weight = config.model.adversarial_weight
  warmup = config.model.get('adversarial_warmup_steps', 0)
  if warmup <= 0:
    return jnp.asarray(weight, jnp.float32)
  return weight * jnp.minimum(1.0, step.astype(jnp.float32) / warmup)


def _discriminator_phase(state: AAEState, style: jax.Array, logits: jax.Array, key: jax.Array,
                         config: ml_collections.ConfigDict, layout: latent.CodeLayout):
  """Phase (2): one BCE step of D_cat and of D_style against the encoder's (held) outputs.

  Returns (new D_cat, new D_style, metrics).
  """
  lc = config.loss
  batch_size = style.shape[0]
  k_prior, k_cat_real, k_cat_fake, k_style_real, k_style_fake = jax.random.split(key, 5)
  # The priors' samples (the layout's own: style ~ N(0, I), y uniform one-hot).
  prior = latent.sample(k_prior, layout, batch_size)
  real_cat = jax.nn.one_hot(prior.categorical[:, 0], layout.categorical[0], dtype=style.dtype)
  labels = lambda k, value, other: gan.noisy_labels(k, (batch_size,), value, other,
                                                       lc.label_flip_prob)
  new_cat, d_cat_loss, d_cat_real, d_cat_fake = gan.discriminator_update(
      state.disc_cat, real_cat, jax.lax.stop_gradient(jax.nn.softmax(logits, axis=-1)),
      labels(k_cat_real, lc.real_label, lc.fake_label),
      labels(k_cat_fake, lc.fake_label, lc.real_label))
  new_style, d_style_loss, d_style_real, d_style_fake = gan.discriminator_update(
      state.disc_style, prior.noise, jax.lax.stop_gradient(style),
      labels(k_style_real, lc.real_label, lc.fake_label),
      labels(k_style_fake, lc.fake_label, lc.real_label))
  metrics = {'d_cat_loss': d_cat_loss, 'd_style_loss': d_style_loss,
             'd_cat_real_prob': d_cat_real, 'd_cat_fake_prob': d_cat_fake,
             'd_style_real_prob': d_style_real, 'd_style_fake_prob': d_style_fake}
  return new_cat, new_style, metrics


def _fool_losses(disc_cat: train_state.TrainState, disc_style: train_state.TrainState,
                 style: jax.Array, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Phase (3)'s terms: the encoder's non-saturating losses against the (held) adversaries."""
  g_cat = gan.generator_loss(
      disc_cat.apply_fn({'params': disc_cat.params}, jax.nn.softmax(logits, axis=-1)))
  g_style = gan.generator_loss(disc_style.apply_fn({'params': disc_style.params}, style))
  return g_cat, g_style


def _separate_step(state: AAEState, images: jax.Array, config: ml_collections.ConfigDict,
                   layout: latent.CodeLayout) -> tuple[AAEState, method_lib.Metrics]:
  """The paper's phases as two encoder updates, each with its own Adam state (module docstring).

  (1) moves encoder+decoder on the MSE with `state.ae`'s optimiser; (2)
  trains the adversaries on the moved encoder's outputs; (3) moves the
  encoder against them with `regularisation_optimizer` (the same Adam
  settings unless `model.regularisation_learning_rate` is set) and the
  regularisation phase's own moments (`reg_opt_state`), so neither phase's
  gradient scale leaks into the other's per-parameter normalisation.
  """
  key = jax.random.fold_in(state.rng, state.step)

  # (1) Reconstruction.
  def recon_loss_fn(params):
    (_, _, recon), batch_stats = state_lib.train_forward(state.ae, params, images)
    return reconstruction.reconstruction_loss(images, recon), batch_stats

  (recon_loss, batch_stats), recon_grads = jax.value_and_grad(
      recon_loss_fn, has_aux=True)(state.ae.params)
  ae = state.ae.apply_gradients(grads=recon_grads).replace(batch_stats=batch_stats)

  # (2) The adversaries, on the encoder after (1).
  (style, logits), encode_vjp, batch_stats = jax.vjp(
      lambda params: state_lib.train_forward(ae, params, images,
                                                 method=AAEAutoencoder.encode),
      ae.params, has_aux=True)
  ae = ae.replace(batch_stats=batch_stats)
  new_cat, new_style, d_metrics = _discriminator_phase(state, style, logits, key, config, layout)

  # (3) The encoder against the updated adversaries (the decoder's gradient is
  # zero, so Adam leaves it where (1) put it).
  weight = adversarial_weight(config, state.step)

  def fool_loss_fn(outputs):
    g_cat, g_style = _fool_losses(new_cat, new_style, *outputs)
    return weight * (g_cat + g_style), {'g_cat_loss': g_cat, 'g_style_loss': g_style}

  (_, g_metrics), out_grads = jax.value_and_grad(fool_loss_fn, has_aux=True)((style, logits))
  (reg_grads,) = encode_vjp(out_grads)
  updates, reg_opt_state = regularisation_optimizer(config).update(
      reg_grads, state.reg_opt_state, ae.params)
  ae = ae.replace(params=optax.apply_updates(ae.params, updates))

  metrics = {'recon_loss': recon_loss, **g_metrics, **d_metrics}
  new_state = state.replace(step=state.step + 1, ae=ae, disc_cat=new_cat, disc_style=new_style,
                            reg_opt_state=reg_opt_state)
  return new_state, metrics


def _step(state: AAEState, images: jax.Array, config: ml_collections.ConfigDict,
          layout: latent.CodeLayout) -> tuple[AAEState, method_lib.Metrics]:
  """The 'combined' update (module docstring); pure, draws from fold_in(rng, step).

  Phases (1) and (3) are one Adam step on the summed loss
  recon + adversarial_weight * (g_cat + g_style), both evaluated at the
  encoder's current parameters, rather than the paper's two updates per
  batch: one forward and one backward pass through the encoder. The
  discriminators (2) see the encoder's outputs before this step's
  reconstruction update, not after it. Collapses the cluster head on MNIST
  (module docstring); 'separate' is the default.
  """
  key = jax.random.fold_in(state.rng, state.step)

  # (1)'s forward; its VJP is reused for the encoder+decoder update below.
  (style, logits, recon), ae_vjp, batch_stats = jax.vjp(
      lambda params: state_lib.train_forward(state.ae, params, images), state.ae.params,
      has_aux=True)

  # (2)
  new_cat, new_style, d_metrics = _discriminator_phase(state, style, logits, key, config, layout)
  weight = adversarial_weight(config, state.step)

  # (1) + (3): the loss as a function of the encoder's outputs; the updated
  # discriminators are held fixed. The decoder's output enters only the MSE.
  def ae_loss_fn(outputs):
    style_out, logits_out, recon_out = outputs
    recon_loss = reconstruction.reconstruction_loss(images, recon_out)
    g_cat, g_style = _fool_losses(new_cat, new_style, style_out, logits_out)
    total = recon_loss + weight * (g_cat + g_style)
    return total, {'recon_loss': recon_loss, 'g_cat_loss': g_cat, 'g_style_loss': g_style}

  (_, ae_metrics), out_grads = jax.value_and_grad(ae_loss_fn, has_aux=True)(
      (style, logits, recon))
  (ae_grads,) = ae_vjp(out_grads)
  new_ae = state.ae.apply_gradients(grads=ae_grads).replace(batch_stats=batch_stats)

  metrics = {**ae_metrics, **d_metrics}
  new_state = state.replace(step=state.step + 1, ae=new_ae, disc_cat=new_cat,
                            disc_style=new_style)
  return new_state, metrics


METHOD = AAE()
