r"""CelebA: paper Table 4 and its hyper-parameters (lambda_disc 1, lambda_cont 1).

  Enc  Input(3x32x32)   Dec  Input in R^128             D/Q  Input in R^128      G  Input in R^228
       c4-o64-s2-r           r-u4-c3-o512-p1-bn-r            fc-o3000-r             fc-o3000-r
       c4-o128-s2-r          u2-c3-o256-p1-bn-r              fc-o3000-r             fc-o3000-r
       c4-o256-s2-r          u2-c3-o128-p1-bn-r              fc-o3000-r             fc-o3000-r
       c4-o512-s2-r          u2-c3-o3-p1-tanh                fc-o512-r              fc-o3000-r
       c4-o128-s2-r                                          fc-o1-sig, 10x(fc-o10) fc-o128
       fc-o128

Data: tfds `celeb_a` (downloaded by tfds if not prepared in the tfds data dir;
offline, prepare it elsewhere and copy it), centre-cropped 140x140 and resized
to 32x32.
"""

from configs import common, mnist


def get_config(variant: str = 'paper'):
  """Returns the CelebA config; `variant='smoke'` shrinks it for tests."""
  common.check_variant(variant, ('paper', 'smoke'), 'CelebA')
  config = common.get_base_config()
  # Aligned faces are 218x178; the central 140x140 square holds the face (the
  # crop of DCGAN/BEGAN-style CelebA pipelines), then resized.
  config.dataset.update(name='celeb_a', train_split='train', eval_split='test', image_size=32,
                        channels=3, crop=140, resize='resize', shuffle_buffer=20_000)
  config.model.update(latent_dim=128, encoder_features=(64, 128, 256, 512, 128),
                      decoder_upsample=(4, 2, 2, 2), decoder_features=(512, 256, 128),
                      generator_hidden=(3000,) * 4, discriminator_hidden=(3000, 3000, 3000, 512))

  # G input 228 = 128 noise + 10 x Cat(10); no continuous codes.
  config.codes.update(noise_dim=128, categorical=(10,) * 10, num_continuous=0,
                      generator_input_dim=228)
  config.loss.update(lambda_disc=1.0, lambda_cont=1.0)

  if variant == 'smoke':
    mnist.apply_smoke(config)
  return config
