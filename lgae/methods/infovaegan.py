r"""InfoVAEGAN (Ye & Bors 2021, Sec. 4): GAN + inference network, joint latent, MI terms.

Generative process (Sec. 4.1): x = G(z, s, c) with noise z ~ p(z), a one-hot
discrete code s ~ Cat(K, 1/K) and continuous codes c (the MNIST experiment's
U(-1, 1); `lgae.core.latent` draws them, packed as [z, one-hot s, c]). An encoder
E = p_phi(s, c | x) ("the inference network", the paper's W(u | x)) outputs
the logits of s and a diagonal Gaussian N(mu(x), diag(sigma^2(x))) over c. A
joint discriminator D(x, s, c) tells real pairs (x, E(x)) from fake ones
(G(z, s, c), s, c), as in ALI/BiGAN (Eq. 16). Per batch of m images:

  L_D   (Eq. 28)  BCE(D(x, s', c') -> 1) + BCE(D(G(z, s, c), s, c) -> 0)           D
  L_EG  (Eq. 29)  -log D(G(z, s, c), s, c)                                          G
                  + w_E * -log(1 - D(x, s', c'))                                    E
  L_MI  (Eq. 30)  lambda_disc * CE(E_s(x_g), s)                                     E, G
                  + lambda_cont * -log N(c; mu(x_g), sigma^2(x_g))
  L_VAE (Eq. 31)  -log p(x_g | G(z, s'', c'')) + KL(N(mu, sigma^2) || N(0, I))      E only
                  + KL(softmax(E_s(x_g)) || Cat(1/K))

with x_g = G(z, s, c) the batch's fakes and (s', c') / (s'', c'') posterior
samples of E on the real images x / on x_g:

  c' = mu + sigma * xi, xi ~ N(0, I)                           (Eq. 7)
  s' = softmax((log softmax(l) + g) / T), g ~ Gumbel(0, 1)     (Eq. 8, Gumbel-softmax)

L_VAE (Sec. 4.3) is the ELBO of the *generator's* distribution: E infers
(s'', c'') from a fake x_g, and G(z, s'', c''), with the z that made x_g
(Algorithm 1, lines 5 and 12), must give x_g back. "The VAE loss is only used
to optimize the parameters of the inference network": G's parameters and the
target x_g are constants in it. E never gets a reconstruction signal from a
real image (Sec. 4.4 says so); InfoVAEGAN2 (Sec. 4.4, Eq. 32: a second
generator trained on real reconstructions) is not implemented.

What the paper leaves open, and our choices (all configurable in
`config.model` unless said otherwise):

* Networks (Sec. 5.2: "the same network architecture ... for all methods",
  i.e. InfoGAN's, `lgae.nets.dcgan`): G is `dcgan.Generator`; E is InfoGAN's
  D/Q trunk and Q head (conv-lrelu, conv-bn-lrelu, fc-bn-lrelu, fc-bn-lrelu)
  ending in one logit head per Cat code and a mean and a log-variance head
  for c; D is the same conv trunk on x, whose flattened features are
  concatenated with the codes [s, c] before its fc-bn-lrelu and logit (the
  simplest joint D). E and D share no layer (Fig. 2 draws them apart), so
  L_MI's gradient "w.r.t. all components" (Eq. 30) reaches E and G; D has no
  parameter in it.
  `encoder_trunk='discriminator'` (not the paper) instead puts E's fc layers
  on D's conv trunk, InfoGAN's tie: L_MI then also trains the trunk, in D's
  step, as InfoGAN's D/Q step does.
* E's adversarial term. Eq. (16) minimises V over E and G, but Eq. (29) writes
  only the fake term (where E does not appear); we give E the real term,
  non-saturating like G's (-log(1 - D) on real pairs: BiGAN/ALI practice),
  weighted by `encoder_gan_weight` (1: Eq. 16; 0: Eq. 29 read literally).
  G's term is non-saturating too (`gan.generator_loss`, lgae's convention).
* D's real code s'. A relaxed s' is never exactly one-hot, unlike the prior's
  s, so D could tell real from fake by the softness alone;
  `discriminator_hard_codes` feeds D the straight-through one-hot (forward:
  one_hot(argmax), gradient: the relaxed sample's). L_VAE uses the relaxed s''.
* Gumbel-softmax temperature `temperature` (0.67: JointVAE's, Dupont 2018).
* Reconstruction likelihood p(x_g | .) (`reconstruction`): 'bernoulli' (cross-
  entropy of (x_g + 1) / 2 under (G + 1) / 2, read off G's pre-tanh output,
  `lgae.objectives.vae.reconstruction_loss`) or 'mse'; summed over pixels (an
  ELBO per image).
  `vae_weight` scales the whole of L_VAE (1: the paper's unweighted sum).
* KL for c against N(0, I) (Eq. 27's Gaussian p(c)) while the GAN draws c from
  U(-1, 1) (Sec. 5.2, MNIST): the paper mixes the two; not configurable.
* One combined update per batch (lgae's rule; Algorithm 1 has four): D first,
  then E and G in one Adam step each on L_EG + L_MI + vae_weight * L_VAE,
  through the freshly updated D. E has G's optimiser settings
  (optimizer.learning_rate), D its own (optimizer.disc_learning_rate).
* BatchNorm: each network's real and fake batches go through separate
  forwards (D could otherwise tell them apart by the batch statistics). E's
  running statistics follow its real forward then its forward on x_g, so at
  evaluation it normalises with a mix of both.

Evaluation: the cluster of an image is argmax of E's first Cat head (the
discrete posterior; Table 1's protocol); the representation `z` the
disentanglement metrics score is [mu(x), softmax of each Cat head], the
posterior means of c and the posterior probabilities of s; `recon` is
G(0, one_hot(argmax s), mu(x)) (Fig. 11(d): inferred codes into G; the noise
at its prior mean, so that it is a deterministic function of x).
"""

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from lgae.core import latent
from lgae.core import method as method_lib
from lgae.core import state as state_lib
from lgae.nets import dcgan
from lgae.objectives import gan, info, vae

# config.model.mi_variance values (model_config says what each means).
MI_VARIANCES = ('learned', 'unit')
# config.model.encoder_trunk values: E's own conv trunk (the paper's Fig. 2) or D's.
ENCODER_TRUNKS = ('own', 'discriminator')


# -----------------------------------------------------------------------------
# Loss pieces (pure).
# -----------------------------------------------------------------------------


def gumbel_softmax(logits: jax.Array, gumbel: jax.Array, temperature: float,
                   hard: bool = False) -> jax.Array:
  """Eq. (8): softmax((log s + g) / T) with s = softmax(logits) and g ~ Gumbel(0, 1).

  Args:
    logits: [N, K] the encoder's logits of s.
    gumbel: [N, K] Gumbel(0, 1) draws.
    temperature: T > 0.
    hard: return the straight-through one-hot (forward: one_hot(argmax) of the
      relaxed sample; gradient: the relaxed sample's).
  """
  soft = jax.nn.softmax((jax.nn.log_softmax(logits, axis=-1) + gumbel) / temperature, axis=-1)
  if not hard:
    return soft
  one_hot = jax.nn.one_hot(jnp.argmax(soft, axis=-1), soft.shape[-1], dtype=soft.dtype)
  return soft + jax.lax.stop_gradient(one_hot - soft)


def posterior_codes(out: dict[str, Any], key: jax.Array, temperature: float,
                    hard: bool) -> jax.Array:
  """A sample [s_1, ..., s_n, c] of E's posterior, packed as G's codes (after the noise).

  c = mean + exp(log_var / 2) * xi (Eq. 7); each s_i a Gumbel-softmax sample
  (Eq. 8), straight-through one-hot if `hard`.
  """
  k_gumbel, k_eps = jax.random.split(key)
  keys = jax.random.split(k_gumbel, max(len(out['cat_logits']), 1))
  cats = [gumbel_softmax(logits, jax.random.gumbel(k, logits.shape, logits.dtype),
                         temperature, hard) for k, logits in zip(keys, out['cat_logits'])]
  eps = jax.random.normal(k_eps, out['mean'].shape, out['mean'].dtype)
  return jnp.concatenate([*cats, out['mean'] + jnp.exp(0.5 * out['log_var']) * eps], axis=-1)


# -----------------------------------------------------------------------------
# Networks.
# -----------------------------------------------------------------------------


class Encoder(nn.Module):
  """E = p_phi(s, c | x): trunk, fc-bn-lrelu, fc-bn-lrelu, then the posterior's heads.

  With `own_trunk=False` E has no conv layers: its input is D's flattened trunk
  features (`config.model.encoder_trunk='discriminator'`).
  """

  features: Sequence[int]
  fc: int
  hidden: int
  categorical: Sequence[int]
  num_continuous: int
  leaky_slope: float = 0.1
  batch_norm_momentum: float = 0.9
  own_trunk: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> dict[str, Any]:
    """Returns {'cat_logits': tuple of [N, K], 'mean': [N, n_cont], 'log_var': [N, n_cont]}.

    x: images [N, H, W, C], or D's trunk features [N, F] if not `own_trunk`.
    """
    bn = lambda name: nn.BatchNorm(use_running_average=not train,
                                   momentum=self.batch_norm_momentum, name=name)
    act = lambda h: nn.leaky_relu(h, self.leaky_slope)
    h = x
    if self.own_trunk:
      h = dcgan.ConvTrunk(self.features, self.leaky_slope, self.batch_norm_momentum, name='trunk')(
          x, train=train)
    h = act(bn('bn_fc')(nn.Dense(self.fc, use_bias=False, name='fc')(h)))
    h = act(bn('bn_hidden')(nn.Dense(self.hidden, use_bias=False, name='hidden')(h)))
    cat_logits = tuple(nn.Dense(k, name=f'cat{i}')(h) for i, k in enumerate(self.categorical))
    if self.num_continuous:
      mean = nn.Dense(self.num_continuous, name='mean')(h)
      log_var = nn.Dense(self.num_continuous, name='log_var')(h)
    else:
      mean = log_var = jnp.zeros((x.shape[0], 0), x.dtype)
    return {'cat_logits': cat_logits, 'mean': mean, 'log_var': log_var}


class JointDiscriminator(nn.Module):
  """D(x, [s, c]): the conv trunk on x, the codes concatenated to its features,
  fc-bn-lrelu, fc-o1 (a logit). `features` is the trunk alone (what E reads
  with `encoder_trunk='discriminator'`)."""

  conv_features: Sequence[int]
  fc_width: int
  leaky_slope: float = 0.1
  batch_norm_momentum: float = 0.9

  # setup, not compact, so that `features` can run the trunk alone; the
  # parameter names are those of the compact version (checkpoints still load).
  def setup(self):
    self.trunk = dcgan.ConvTrunk(self.conv_features, self.leaky_slope, self.batch_norm_momentum)
    self.fc = nn.Dense(self.fc_width, use_bias=False)
    self.bn_fc = nn.BatchNorm(momentum=self.batch_norm_momentum)
    self.head = nn.Dense(1)

  def features(self, x: jax.Array, *, train: bool) -> jax.Array:
    """The trunk's flattened features [N, F] of images x."""
    return self.trunk(x, train=train)

  def __call__(self, x: jax.Array, codes: jax.Array, *, train: bool,
               return_features: bool = False):
    """Returns the logits [N] of D(x, codes) (and the trunk's features if asked)."""
    features = self.trunk(x, train=train)
    h = jnp.concatenate([features, codes.astype(features.dtype)], axis=-1)
    h = self.bn_fc(self.fc(h), use_running_average=not train)
    logit = self.head(nn.leaky_relu(h, self.leaky_slope))[:, 0]
    return (logit, features) if return_features else logit


class InfoVAEGANState(state_lib.StepState):
  """Everything that changes during InfoVAEGAN training (beyond `StepState`'s step and rng).

  Attributes:
    enc: E's parameters, optimiser state and BatchNorm statistics.
    gen: G's.
    disc: D's.
  """

  enc: state_lib.AutoencoderState
  gen: state_lib.AutoencoderState
  disc: state_lib.AutoencoderState


class InfoVAEGAN(method_lib.Method):
  """Ye & Bors's unsupervised InfoVAEGAN: G, E (the inference network) and a joint D."""

  name = 'infovaegan'
  state_type = InfoVAEGANState
  has_decoder = True

  # --- Configuration -------------------------------------------------------

  def model_config(self) -> ml_collections.ConfigDict:
    """Defaults: InfoGAN's MNIST networks (the paper's "same architecture")."""
    m = dcgan.model_config()   # G (`dcgan.Generator`), the lrelu slope, BatchNorm's momentum.
    # E: a 4x4 stride-2 conv per entry (BatchNorm after all but the first),
    # lrelu; fc-o<encoder_fc>-bn-lrelu; fc-o<encoder_hidden>-bn-lrelu; then
    # fc-oK per Cat code (logits of s), fc-o<n_cont> (mean of c) and
    # fc-o<n_cont> (log-variance of c). InfoGAN's D trunk and Q head.
    m.encoder_features = (64, 128)
    m.encoder_fc = 1024
    m.encoder_hidden = 128
    # D: the same conv trunk on x; [features, s, c] -> fc-o<discriminator_fc>-
    # bn-lrelu -> fc-o1.
    m.discriminator_features = (64, 128)
    m.discriminator_fc = 1024
    # Gumbel-softmax temperature T of Eq. (8); the paper gives none (0.67:
    # JointVAE's, Dupont 2018).
    m.temperature = 0.67
    # Feed D the straight-through one-hot of the real images' s' (see the
    # module docstring); False: the relaxed sample, as Eq. (8) alone.
    m.discriminator_hard_codes = True
    # Weight of E's adversarial term -log(1 - D(x, E(x))): 1 = Eq. (16) (E
    # minimises V), 0 = Eq. (29) read literally (no adversarial signal into E).
    m.encoder_gan_weight = 1.0
    # Weight of L_VAE (Eq. 31) in E's loss; 1 = the paper's unweighted sum.
    m.vae_weight = 1.0
    # p(x_g | G(z, s'', c'')): 'bernoulli' or 'mse' (`vae.reconstruction_loss`).
    m.reconstruction = 'bernoulli'
    # The variance in L_MI's -log N(c; mu(x_g), sigma^2) (Eq. 30): 'learned'
    # (E's own sigma(x_g), the paper) or 'unit' (sigma = 1, InfoGAN's Q; L_VAE
    # still uses E's sigma). On dSprites (:cpu) G writes the 7 continuous codes
    # into pixel noise under either choice at lambda_cont = 1, and with
    # 'learned' at 0.1; 'unit' at 0.1 (bounded: the term can gain at most
    # 0.1 * n_cont * Var(c) / 2 nats) learns sprites (G later collapsed on 2
    # of 3 seeds), so configs/infovaegan_dsprites.py:cpu uses that
    # (experiments/docs/methods.md, InfoVAEGAN; experiments/docs/comparisons.md,
    # dSprites).
    m.mi_variance = 'learned'
    # Where E's fc layers read from: 'own' (E's own conv trunk, the paper's
    # Fig. 2: E and D share no layer) or 'discriminator' (InfoGAN's tie: E's
    # fc layers and heads sit on D's conv trunk, as InfoGAN's Q on D's; the
    # trunk is trained by L_D + L_MI in D's step, E's adversarial term and
    # L_VAE reach only E's own layers; encoder_features is then unused). Why
    # the option: with 'own' on MNIST (:cpu) G hides s in details E reads
    # and ignores it at the scale of a digit (experiments/docs/comparisons.md,
    # MNIST).
    m.encoder_trunk = 'own'
    # Instance noise (Sønderby et al. 2017; not the paper): std of the
    # Gaussian noise added to every image D sees, real and fake, in D's step
    # and in G's and E's adversarial terms (0 = none). Why: dSprites pixels
    # are exactly +-1 and G's tanh never is, so D may win on pixel exactness
    # alone. At 0.2, G kept sprites to step 3,000 on dSprites :cpu seed 0,
    # where every other variant collapsed (experiments/docs/comparisons.md,
    # dSprites); not yet a default.
    m.instance_noise = 0.0
    return m

  def validate(self, config: ml_collections.ConfigDict, need: method_lib.Need) -> None:
    m, c = config.model, config.codes
    need(len(c.categorical) + c.num_continuous > 0,
         'config.codes: no categorical and no continuous code; InfoVAEGAN infers (s, c), so '
         'give it at least one.')
    dcgan.validate_widths(config, need,
                          ('generator_features', 'encoder_features', 'discriminator_features'),
                          ('generator_fc', 'encoder_fc', 'encoder_hidden', 'discriminator_fc'),
                          'G, E and D')
    need(m.temperature > 0, f'config.model.temperature={m.temperature} must be > 0.')
    for name in ('encoder_gan_weight', 'vae_weight', 'instance_noise'):
      need(m[name] >= 0, f'config.model.{name}={m[name]} must be >= 0.')
    need(m.mi_variance in MI_VARIANCES,
         f'config.model.mi_variance={m.mi_variance!r} must be one of {MI_VARIANCES}.')
    need(m.encoder_trunk in ENCODER_TRUNKS,
         f'config.model.encoder_trunk={m.encoder_trunk!r} must be one of {ENCODER_TRUNKS}.')
    vae.need_reconstruction(m.reconstruction, need)

  # --- Networks and state ----------------------------------------------------

  def build_models(self, config: ml_collections.ConfigDict
                   ) -> tuple[Encoder, dcgan.Generator, JointDiscriminator]:
    """(E, G, D) from config.model, config.codes and config.dataset."""
    m, c = config.model, config.codes
    encoder = Encoder(features=tuple(m.encoder_features), fc=m.encoder_fc,
                      hidden=m.encoder_hidden, categorical=tuple(c.categorical),
                      num_continuous=c.num_continuous, leaky_slope=m.leaky_slope,
                      batch_norm_momentum=m.batch_norm_momentum,
                      own_trunk=m.encoder_trunk == 'own')
    discriminator = JointDiscriminator(conv_features=tuple(m.discriminator_features),
                                       fc_width=m.discriminator_fc, leaky_slope=m.leaky_slope,
                                       batch_norm_momentum=m.batch_norm_momentum)
    return encoder, dcgan.build_generator(config), discriminator

  def init_state(self, key: jax.Array, config: ml_collections.ConfigDict,
                 models: tuple[Encoder, dcgan.Generator, JointDiscriminator]
                 ) -> InfoVAEGANState:
    encoder, generator, discriminator = models
    layout = self.code_layout(config)
    k_enc, k_gen, k_disc, k_rng = jax.random.split(key, 4)
    size, channels = config.dataset.image_size, config.dataset.channels
    x = jnp.zeros((1, size, size, channels))
    gen_vars = generator.init(k_gen, jnp.zeros((1, layout.input_dim)), train=False)
    disc_vars = discriminator.init(k_disc, x, jnp.zeros((1, layout.input_dim - layout.noise_dim)),
                                   train=False)
    # E's input: images, or D's trunk features (encoder_trunk='discriminator').
    enc_input = x if encoder.own_trunk else jax.eval_shape(
        lambda: discriminator.apply(disc_vars, x, train=False, method='features'))
    enc_vars = encoder.init(k_enc, jnp.zeros(enc_input.shape, enc_input.dtype), train=False)
    create = functools.partial(state_lib.network_state, config=config)
    # E with G's optimiser: both are trained by L_EG and L_MI (Algorithm 1, lines 14-15).
    return InfoVAEGANState(step=jnp.zeros((), jnp.int32), rng=k_rng,
                           enc=create(encoder, enc_vars, network='generator'),
                           gen=create(generator, gen_vars, network='generator'),
                           disc=create(discriminator, disc_vars, network='discriminator'))

  # --- Training --------------------------------------------------------------

  def train_step(self, state: InfoVAEGANState, batch: dict[str, jax.Array], *,
                 config: ml_collections.ConfigDict) -> tuple[InfoVAEGANState, method_lib.Metrics]:
    """D on L_D, then E and G on L_EG + L_MI + vae_weight * L_VAE through the new D."""
    m, lc = config.model, config.loss
    layout = self.code_layout(config)
    images = batch['image']
    n = images.shape[0]
    key = jax.random.fold_in(state.rng, state.step)
    k_codes, k_real_post, k_fake_post, k_real_t, k_fake_t = jax.random.split(key, 5)
    codes = latent.sample(k_codes, layout, n)
    g_input = latent.generator_input(codes, layout)
    prior_codes = g_input[:, layout.noise_dim:]          # [one-hot s, c] of the fakes.
    on_disc_trunk = m.encoder_trunk == 'discriminator'
    # D's inputs, with instance noise if asked (its keys folded in, so that the
    # other draws are those of a run without it). The same draws serve D's step
    # and the E/G step. E's own inputs stay clean (with E on D's trunk, only
    # the trunk's L_MI in D's step reads the noisy fakes, from D's forward).
    k_noise_real, k_noise_fake = jax.random.split(jax.random.fold_in(key, 1))
    noise_std = m.instance_noise

    def d_input(x, k):
      if noise_std == 0:
        return x
      return x + noise_std * jax.random.normal(k, x.shape, x.dtype)

    def encode(enc_params, enc_stats, disc, x):
      """E's outputs on images x and E's new BatchNorm statistics (train mode).

      On D's trunk, D's statistics from that forward are dropped: D's step keeps them.
      """
      if on_disc_trunk:
        x, _ = state_lib.train_forward(disc, disc.params, x, method='features')
      return state_lib.train_forward(state.enc, enc_params, x, batch_stats=enc_stats)

    def mi_terms(out):
      """L_MI (Eq. 30) of E's outputs on the fakes: (weighted sum, CE of s, NLL of c)."""
      mi_cat = info.categorical_mi_loss(out['cat_logits'], codes.categorical)
      mi_log_var = (out['log_var'] if m.mi_variance == 'learned'
                    else jnp.zeros_like(out['log_var']))
      mi_cont = vae.gaussian_nll(codes.continuous, out['mean'], mi_log_var)
      return lc.lambda_disc * mi_cat + lc.lambda_cont * mi_cont, mi_cat, mi_cont

    # G and E-on-real each run forward once: their outputs feed D's step, and
    # their VJPs carry the E/G step's gradients back (parameters unchanged in between).
    fake, gen_vjp, gen_stats = jax.vjp(
        lambda params: state_lib.train_forward(state.gen, params, g_input),
        state.gen.params, has_aux=True)

    def encode_real_fn(params):
      out, stats = encode(params, state.enc.batch_stats, state.disc, images)
      real_codes = posterior_codes(out, k_real_post, m.temperature, m.discriminator_hard_codes)
      return real_codes, stats

    real_codes, enc_real_vjp, enc_stats = jax.vjp(encode_real_fn, state.enc.params,
                                                  has_aux=True)
    real_targets, fake_targets = gan.discriminator_targets(k_real_t, k_fake_t, n, lc)

    # --- D: L_D (Eq. 28), real and fake pairs in separate BatchNorm batches.
    def disc_loss_fn(params):
      real_logit, stats = state_lib.train_forward(
          state.disc, params, d_input(images, k_noise_real), jax.lax.stop_gradient(real_codes))
      (fake_logit, fake_features), stats = state_lib.train_forward(
          state.disc, params, d_input(jax.lax.stop_gradient(fake), k_noise_fake), prior_codes,
          batch_stats=stats, return_features=True)
      d_loss = gan.discriminator_loss(real_logit, fake_logit, real_targets, fake_targets)
      metrics = {'d_loss': d_loss, 'd_real_prob': jnp.mean(jax.nn.sigmoid(real_logit)),
                 'd_fake_prob': jnp.mean(jax.nn.sigmoid(fake_logit))}
      total = d_loss
      if on_disc_trunk:
        # InfoGAN's tie: L_MI trains D's trunk too, with E's own layers fixed
        # here (they learn in the E/G step), as InfoGAN's D/Q step does.
        q_out, _ = state_lib.train_forward(state.enc, state.enc.params, fake_features)
        trunk_mi, _, _ = mi_terms(q_out)
        metrics['d_trunk_mi_loss'] = trunk_mi
        total = d_loss + trunk_mi
      return total, (stats, metrics)

    (_, (disc_stats, disc_metrics)), disc_grads = jax.value_and_grad(
        disc_loss_fn, has_aux=True)(state.disc.params)
    new_disc = state.disc.apply_gradients(grads=disc_grads, batch_stats=disc_stats)

    # --- E and G: L_EG + L_MI + vae_weight * L_VAE, with D fixed at its new value.
    def discriminate(x, code_vec):
      logit, _ = state_lib.train_forward(new_disc, new_disc.params, x, code_vec)
      return logit

    def eg_loss_fn(enc_params, fake_images, real_code_vec):
      g_adv = gan.generator_loss(discriminate(d_input(fake_images, k_noise_fake), prior_codes))
      e_adv = gan.encoder_adversarial_loss(
          discriminate(d_input(images, k_noise_real), real_code_vec))
      # L_MI: E reads the codes back off G's images (gradient into E and G).
      fake_out, new_enc_stats = encode(enc_params, enc_stats, new_disc, fake_images)
      mi, mi_cat, mi_cont = mi_terms(fake_out)
      # L_VAE: E only. x_g is a constant target and E's input (a second
      # forward, so that no L_VAE gradient reaches G through x_g); G's
      # parameters are closed over, not differentiated.
      target = jax.lax.stop_gradient(fake_images)
      vae_out, _ = encode(enc_params, enc_stats, new_disc, target)
      post = posterior_codes(vae_out, k_fake_post, m.temperature, hard=False)
      recon, captured = state.gen.apply_fn(
          state_lib.variables(state.gen), jnp.concatenate([codes.noise, post], axis=-1),
          train=True, mutable=['batch_stats'],
          capture_intermediates=dcgan.is_generator_output_conv)
      recon_loss = vae.reconstruction_loss(
          target, recon, dcgan.generator_pre_tanh(captured['intermediates']), m.reconstruction)
      kl_cont = jnp.mean(vae.gaussian_kl(vae_out['mean'], vae_out['log_var']))
      kl_cat = sum((jnp.mean(vae.categorical_kl_uniform(l)) for l in vae_out['cat_logits']),
                   jnp.zeros((), jnp.float32))
      vae_loss = recon_loss + kl_cont + kl_cat
      total = g_adv + m.encoder_gan_weight * e_adv + mi + m.vae_weight * vae_loss
      metrics = {'g_loss': g_adv, 'e_adv_loss': e_adv, 'mi_cat_loss': mi_cat,
                 'mi_cont_loss': mi_cont, 'recon_loss': recon_loss, 'kl_cont': kl_cont,
                 'kl_cat': kl_cat, 'vae_loss': vae_loss}
      return total, (new_enc_stats, metrics)

    (_, (new_enc_stats, eg_metrics)), (enc_grads, fake_grads, code_grads) = jax.value_and_grad(
        eg_loss_fn, argnums=(0, 1, 2), has_aux=True)(state.enc.params, fake, real_codes)
    (enc_adv_grads,) = enc_real_vjp(code_grads)
    enc_grads = jax.tree.map(jnp.add, enc_grads, enc_adv_grads)
    (gen_grads,) = gen_vjp(fake_grads)
    new_enc = state.enc.apply_gradients(grads=enc_grads, batch_stats=new_enc_stats)
    new_gen = state.gen.apply_gradients(grads=gen_grads, batch_stats=gen_stats)
    new_state = state.replace(step=state.step + 1, enc=new_enc, gen=new_gen, disc=new_disc)
    return new_state, {**disc_metrics, **eg_metrics}

  # --- What evaluation and the figures need ----------------------------------

  def eval_outputs(self, state: InfoVAEGANState, images: jax.Array) -> dict[str, Any]:
    """E's posterior on real images (inference mode) and G's decoding of it.

    'z' = [mu(x), softmax of each Cat head]; 'cat_logits' = E's Cat heads;
    'recon' = G(0, one_hot(argmax s), mu(x)).
    """
    x = images
    if 'trunk' not in state.enc.params:      # E on D's trunk (encoder_trunk='discriminator').
      x = state_lib.apply(state.disc, images, train=False, method='features')
    out = state_lib.apply(state.enc, x, train=False)
    probs = [jax.nn.softmax(logits, axis=-1) for logits in out['cat_logits']]
    one_hots = [jax.nn.one_hot(jnp.argmax(l, axis=-1), l.shape[-1], dtype=out['mean'].dtype)
                for l in out['cat_logits']]
    codes = jnp.concatenate([*one_hots, out['mean']], axis=-1)
    # G's input width = noise + codes: the noise width is read off G's first layer.
    noise_dim = state.gen.params['fc']['kernel'].shape[0] - codes.shape[-1]
    g_input = jnp.concatenate([jnp.zeros((images.shape[0], noise_dim), codes.dtype), codes],
                              axis=-1)
    recon = state_lib.apply(state.gen, g_input, train=False)
    return {'z': jnp.concatenate([out['mean'], *probs], axis=-1),
            'cat_logits': tuple(out['cat_logits']), 'recon': recon}

  def generate(self, state: InfoVAEGANState, codes: latent.Codes,
               layout: latent.CodeLayout) -> jax.Array:
    return state_lib.apply(state.gen, latent.generator_input(codes, layout), train=False)


METHOD = InfoVAEGAN()
