r"""3D Chairs: paper Table 3 and its hyper-parameters (lambda_disc 10, lambda_cont 1).

  Enc  Input(1x64x64)   Dec  Input in R^128             D/Q  Input in R^128                 G  Input in R^190
       c4-o64-s2-r           r-u4-c3-o512-p1-bn-r            fc-o3000-r                        fc-o3000-r
       c4-o128-s2-r          u2-c3-o256-p1-bn-r              fc-o3000-r                        fc-o3000-r
       c4-o256-s2-r          u2-c3-o128-p1-bn-r              fc-o3000-r                        fc-o3000-r
       c4-o512-s2-r          u2-c3-o64-p1-bn-r               fc-o512-r                         fc-o3000-r
       c4-o1024-s2-r         u2-c3-o1-p1-tanh                fc-o1-sig, (fc-o2), 3x(fc-o20)    fc-o128
       c4-o128-s2-r
       fc-o128

The table's batch-norm sizes (bn128, bn64, bn32, bn32) do not match the conv
widths they follow; batch norm normalises the conv's own channels.

Data: the `rendered_chairs` tfds builder in `lgae.data` reads
`rendered_chairs.tar` (Aubry et al. 2014) from the manual dir, 64x64 grayscale.
"""

from configs import common, mnist


def get_config(variant: str = 'paper'):
  """Returns the 3D Chairs config; `variant='smoke'` shrinks it for tests."""
  common.check_variant(variant, ('paper', 'smoke'), 'chairs')
  config = common.get_base_config()
  # Stored already cropped and at 64x64 (see above); the archive has no test split.
  config.dataset.update(name='rendered_chairs', train_split='train', eval_split='train[:2%]',
                        image_size=64, channels=1, crop=0, resize='resize',
                        shuffle_buffer=20_000)
  config.model.update(latent_dim=128, encoder_features=(64, 128, 256, 512, 1024, 128),
                      decoder_upsample=(4, 2, 2, 2, 2), decoder_features=(512, 256, 128, 64),
                      generator_hidden=(3000,) * 4, discriminator_hidden=(3000, 3000, 3000, 512))

  # G input 190 = 128 noise + 3 x Cat(20) + 2 x U(-1, 1). The text says one
  # continuous code, but the table says twice that there are two: G's input
  # width (190 - 128 - 60 = 2) and Q's continuous head (fc-o2). We follow the
  # table; the rotation of Fig. 6 is one of the two.
  config.codes.update(noise_dim=128, categorical=(20, 20, 20), num_continuous=2,
                      generator_input_dim=190)
  config.loss.update(lambda_disc=10.0, lambda_cont=1.0)

  if variant == 'smoke':
    mnist.apply_smoke(config)
  return config
