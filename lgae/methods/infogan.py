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

G and D/Q's conv trunk are `lgae.nets.dcgan`'s (shared with InfoVAEGAN and
the CG-AAE). The combined step is the LatentGAN-AE's latent GAN step in image
space: D/Q first, on the real batch and on stop_gradient(G(codes)) in two
separate forwards (BatchNorm must not see a mixed batch, or D could tell real
from fake by the batch statistics alone), then G through the freshly updated
D/Q.
"""

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
from lgae.objectives import gan, info


class InfoGANState(state_lib.StepState):
  """Everything that changes during InfoGAN training (beyond `StepState`'s step and rng).

  Attributes:
    gen: G's parameters, optimiser state and BatchNorm statistics.
    disc: D/Q's (shared trunk, D head, Q heads) parameters, optimiser state
      and BatchNorm statistics.
  """

  gen: state_lib.AutoencoderState
  disc: state_lib.AutoencoderState


class DiscriminatorQ(nn.Module):
  """D and Q on images: a shared conv trunk, D's logit head and Q's code heads.

  Q's heads sit on D's trunk (the paper: "Q shares all convolutional layers
  with D"), so the MI loss trains the trunk too. Returns the dict of the
  LatentGAN-AE's D/Q, so the losses (`lgae.objectives.info`) are written once.
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
    # The paper has no BatchNorm on D's first layer (DCGAN's rule).
    x = dcgan.conv_trunk(x, self.features, train=train, leaky_slope=self.leaky_slope,
                         batch_norm_momentum=self.batch_norm_momentum)
    x = x.reshape((x.shape[0], -1))
    h = act(bn('bn_fc')(nn.Dense(self.fc, use_bias=False, name='fc')(x)))
    out = {'logit': nn.Dense(1, name='d_head')(h)[:, 0]}
    q = act(bn('q_bn')(nn.Dense(self.q_hidden, use_bias=False, name='q_fc')(h)))
    out['cat_logits'] = tuple(nn.Dense(k, name=f'q_cat{i}')(q)
                              for i, k in enumerate(self.categorical))
    out['cont_mean'] = (nn.Dense(self.num_continuous, name='q_cont')(q)
                        if self.num_continuous else jnp.zeros((x.shape[0], 0), x.dtype))
    return out


class InfoGAN(method_lib.Method):
  """InfoGAN on images: G, and D/Q sharing a trunk, each with BatchNorm."""

  name = 'infogan'
  state_type = InfoGANState

  # --- Configuration -------------------------------------------------------

  def model_config(self) -> ml_collections.ConfigDict:
    m = dcgan.model_config()   # G, the leaky relu's slope, BatchNorm's momentum.
    # D/Q trunk: a 4x4 stride-2 conv per entry (all but the first followed by
    # BatchNorm), leaky relu after each, then fc-o<discriminator_fc>-bn-lrelu.
    m.discriminator_features = (64, 128)
    m.discriminator_fc = 1024
    # Q: fc-o<q_hidden>-bn-lrelu on the trunk, then one fc-oK per Cat code
    # (logits) and fc-o<codes.num_continuous> (means of unit-variance Gaussians).
    m.q_hidden = 128
    return m

  def validate(self, config: ml_collections.ConfigDict, need: method_lib.Need) -> None:
    method_lib.need_a_code_for_q(config, need)
    dcgan.validate_widths(config, need, ('generator_features', 'discriminator_features'),
                          ('generator_fc', 'discriminator_fc', 'q_hidden'), "InfoGAN's G and D")

  # --- Networks and state ----------------------------------------------------

  def build_models(self, config: ml_collections.ConfigDict
                   ) -> tuple[dcgan.Generator, DiscriminatorQ]:
    """(G, D/Q), built from config.model, config.codes and config.dataset."""
    m = config.model
    discriminator = DiscriminatorQ(features=tuple(m.discriminator_features),
                                   fc=m.discriminator_fc, q_hidden=m.q_hidden,
                                   categorical=tuple(config.codes.categorical),
                                   num_continuous=config.codes.num_continuous,
                                   leaky_slope=m.leaky_slope,
                                   batch_norm_momentum=m.batch_norm_momentum)
    return dcgan.build_generator(config), discriminator

  def init_state(self, key: jax.Array, config: ml_collections.ConfigDict,
                 models: tuple[dcgan.Generator, DiscriminatorQ]) -> InfoGANState:
    generator, discriminator = models
    layout = self.code_layout(config)
    k_gen, k_disc, k_rng = jax.random.split(key, 3)
    size, channels = config.dataset.image_size, config.dataset.channels
    gen_vars = generator.init(k_gen, jnp.zeros((1, layout.input_dim)), train=False)
    disc_vars = discriminator.init(k_disc, jnp.zeros((1, size, size, channels)), train=False)
    return InfoGANState(
        step=jnp.zeros((), jnp.int32), rng=k_rng,
        gen=state_lib.network_state(generator, gen_vars, config, 'generator'),
        disc=state_lib.network_state(discriminator, disc_vars, config, 'discriminator'))

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
    fake, gen_vjp, gen_stats = jax.vjp(
        lambda params: state_lib.train_forward(state.gen, params, g_input),
        state.gen.params, has_aux=True)
    real_targets, fake_targets = gan.discriminator_targets(k_real, k_fake, batch_size, lc)

    def mi_loss(out):
      """Q's weighted MI loss on fakes and its two terms (metrics)."""
      mi_cat, mi_cont, mi = info.weighted_mi_losses(out, codes, lc)
      return mi, {'mi_cat_loss': mi_cat, 'mi_cont_loss': mi_cont}

    new_disc, disc_metrics = gan.batchnorm_discriminator_update(
        state.disc, images, jax.lax.stop_gradient(fake), real_targets, fake_targets, mi_loss)
    # G, with D/Q fixed at their new values: the loss's gradient with respect
    # to the fake images, pulled back through G's saved VJP.
    g_loss, fake_grads = gan.generator_grads(new_disc, fake, lambda out: mi_loss(out)[0])
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
    out = state_lib.apply(state.disc, images, train=False)
    probs = [jax.nn.softmax(logits, axis=-1) for logits in out['cat_logits']]
    return {'z': jnp.concatenate([out['cont_mean'], *probs], axis=-1),
            'cat_logits': tuple(out['cat_logits'])}

  def generate(self, state: InfoGANState, codes: latent.Codes,
               layout: latent.CodeLayout) -> jax.Array:
    return state_lib.apply(state.gen, latent.generator_input(codes, layout), train=False)


METHOD = InfoGAN()
