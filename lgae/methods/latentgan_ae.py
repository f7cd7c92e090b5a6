"""The LatentGAN Autoencoder (Kalwar et al.) behind the `base.Method` interface.

Its pieces keep their homes: networks in `lgae.models`, the three train states
in `lgae.state.LatentGANState`, the combined step (and the two-stage schedule's
steps, which only this method has) in `lgae.train_step`. This module says how
the shared infrastructure uses them.
"""

import math

import ml_collections

from configs import common
from lgae import latent, train_step
from lgae import models as models_lib
from lgae import state as state_lib
from lgae.methods import base

# Values of config.model.decoder_upsample_conv (see configs/common.py).
DECODER_UPSAMPLE_CONV = ('auto', 'project_first', 'upsample_first')


def _positive_ints(value) -> bool:
  return isinstance(value, (tuple, list)) and all(
      isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


class LatentGANAE(base.Method):
  """Conv autoencoder + a latent GAN (G, D/Q with shared trunk) trained together."""

  name = 'latentgan_ae'
  state_type = state_lib.LatentGANState
  has_decoder = True
  decodes_representation = True
  has_latent_generator = True

  def model_config(self) -> ml_collections.ConfigDict:
    # The base config's model group is this method's (the paper's system is the default).
    return common.get_base_config().model

  def validate(self, config: ml_collections.ConfigDict, need: base.Need) -> None:
    base.need_a_code_for_q(config, need)
    m = config.model
    for name in ('generator_hidden', 'discriminator_hidden'):
      need(_positive_ints(m[name]) and len(m[name]) > 0,
           f'config.model.{name}={tuple(m[name])} must be a non-empty sequence of positive ints.')
    validate_conv_autoencoder_geometry(config, need)

  def build_models(self, config):
    return models_lib.build_models(config)

  def init_state(self, key, config, models):
    return state_lib.init_state(key, config, models)

  def train_step(self, state, batch, *, config):
    return train_step.train_step(state, batch, config=config,
                                 layout=latent.CodeLayout.from_config(config))

  def eval_outputs(self, state, images):
    # The autoencoder in inference mode (BatchNorm running averages); Q reads Enc(x).
    z, recon = state.ae.apply_fn(
        {'params': state.ae.params, 'batch_stats': state.ae.batch_stats}, images, train=False)
    out = state.disc.apply_fn({'params': state.disc.params}, z)
    return {'z': z, 'cat_logits': tuple(out['cat_logits']), 'recon': recon}

  def generate(self, state, codes, layout):
    return self.decode_representation(state, self.generated_latents(state, codes, layout))

  def decode_representation(self, state, z):
    # Dec(z): the scored representation is Enc(x), the latent Dec reads.
    return state.ae.apply_fn({'params': state.ae.params, 'batch_stats': state.ae.batch_stats},
                             z, method='decode')

  def generated_latents(self, state, codes, layout):
    return state.gen.apply_fn({'params': state.gen.params},
                              latent.generator_input(codes, layout))


def validate_conv_autoencoder_geometry(config: ml_collections.ConfigDict, need: base.Need) -> None:
  """Checks of `lgae.models`' conv encoder and decoder fields in `config.model`.

  Shared by every method built on them (this one, `beta_vae`, `wae`): the
  encoder must reduce the image exactly to 1x1 (the tables' last conv feeds
  fc-o<latent>) and the decoder must rebuild it.
  """
  m, d = config.model, config.dataset
  for name in ('latent_dim', 'encoder_kernel', 'encoder_stride', 'decoder_kernel'):
    need(m[name] > 0, f'config.model.{name}={m[name]} must be > 0.')
  for name in ('encoder_features', 'decoder_features', 'decoder_upsample'):
    need(_positive_ints(m[name]) and len(m[name]) > 0,
         f'config.model.{name}={tuple(m[name])} must be a non-empty sequence of positive ints.')
  need(0.0 <= m.batch_norm_momentum < 1.0,
       f'config.model.batch_norm_momentum={m.batch_norm_momentum} must be in [0, 1).')
  if _positive_ints(m.encoder_features) and m.encoder_stride > 0 and d.image_size > 0:
    side = m.encoder_stride ** len(m.encoder_features)
    need(d.image_size == side,
         f'config.dataset.image_size={d.image_size}: the encoder has '
         f'{len(m.encoder_features)} stride-{m.encoder_stride} convs and takes {side}x{side}'
         ' images; change image_size or model.encoder_features.')
    # models.StridedConv: padding (k - s) / 2 on both sides, and k / s taps per block.
    need(m.encoder_kernel >= m.encoder_stride and (m.encoder_kernel - m.encoder_stride) % 2 == 0
         and m.encoder_kernel % m.encoder_stride == 0,
         f'config.model.encoder_kernel={m.encoder_kernel} must be a multiple of encoder_stride='
         f'{m.encoder_stride} and differ from it by an even number (symmetric padding).')
  if _positive_ints(m.decoder_upsample) and _positive_ints(m.decoder_features):
    need(len(m.decoder_upsample) == len(m.decoder_features) + 1,
         f'config.model.decoder_upsample has {len(m.decoder_upsample)} factors; it needs one '
         f'per decoder_features entry ({len(m.decoder_features)}) plus one for the output conv.')
    need(math.prod(m.decoder_upsample) == d.image_size,
         f'config.model.decoder_upsample={tuple(m.decoder_upsample)} multiplies to '
         f'{math.prod(m.decoder_upsample)}, but the decoder must output '
         f'dataset.image_size={d.image_size}.')
  need(m.decoder_kernel % 2 == 1,
       f'config.model.decoder_kernel={m.decoder_kernel} must be odd (SAME padding, as p1 for 3x3).')
  need(m.decoder_upsample_conv in DECODER_UPSAMPLE_CONV,
       f'config.model.decoder_upsample_conv={m.decoder_upsample_conv!r} must be one of '
       f'{DECODER_UPSAMPLE_CONV}.')
