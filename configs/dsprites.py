r"""dSprites (procedural, 64x64x1): the paper's 64x64 networks (Table 3, 3D Chairs).

The paper has no dSprites experiment. This config reuses its 64x64 table (see
configs/chairs.py) and sizes the codes to dSprites' factors: one Cat(3) for
the shape and four U(-1, 1) codes for scale, orientation, x and y.

Data: the `dsprites_procedural` tfds builder in `lgae.data` renders the
737,280 images of the dSprites grid (Matthey et al. 2017), no download; it has
the features of tfds' `dsprites`, whose prepared copy works too with
`config.dataset.name = 'dsprites'`. Images are stored as 0/1 (not 0/255), as
in the release.

Variant 'cpu': the same layer structure at the widths that fit a CPU
(~20x fewer FLOPs per step), for the 3-seed table a 2-core machine can
train (experiments/docs/comparisons.md, "dSprites"):

  Enc  Input(1x64x64)   Dec  Input in R^16            D/Q  Input in R^16      G  Input in R^23
       c4-o32-s2-r           r-u4-c3-o128-p1-bn-r          fc-o1000-r              fc-o1000-r
       c4-o32-s2-r           u2-c3-o64-p1-bn-r             fc-o1000-r              fc-o1000-r
       c4-o64-s2-r           u2-c3-o32-p1-bn-r             fc-o512-r               fc-o1000-r
       c4-o64-s2-r           u2-c3-o32-p1-bn-r             fc-o1-sig, 3 + 4 heads  fc-o16
       c4-o128-s2-r          u2-c3-o1-p1-tanh
       c4-o128-s2-r
       fc-o16

  Why these: the conv widths 32, 32, 64, 64 are disentanglement_lib's
  standard dSprites encoder (Locatello et al. 2019), continued to 1x1 in
  the paper's all-conv style; the latent GAN's G and D/Q are the paper's
  MNIST ones (Table 2), which model a 64-d latent; the latent is 16-d, the
  width Rubenstein et al. use on dSprites (and configs/beta_vae_dsprites.py,
  configs/wae_dsprites.py), so the three methods' representations have the
  same size. The G noise is 16-d (= latent_dim, as the MNIST table's 64).

Usage:
  python -m experiments.main --config=configs/dsprites.py --workdir=/tmp/dsprites
  python -m experiments.main --config=configs/dsprites.py:cpu --workdir=/tmp/dsprites_cpu
  python -m experiments.main --config=configs/dsprites.py:smoke   # tiny, for tests/CI
"""

from configs import chairs, common, mnist


def get_config(variant: str = 'paper'):
  """Returns the dSprites config; `variant='smoke'` shrinks it for tests."""
  common.check_variant(variant, ('paper', 'cpu', 'smoke'), 'dSprites')
  config = chairs.get_config('paper')
  # One split, stored in tfds' key-hash order (as tfds' own `dsprites`), so
  # these slices are fixed pseudo-random subsets of the grid; 2% = 14,746
  # held-out images keep evaluation short. Stored at 64x64 (resize: a no-op)
  # and 0/1 (pixel_max 1: white must become 1.0, not -0.99). Nothing to
  # download: tfds renders the dataset when it is first prepared (about 8
  # minutes on 2 CPU cores; experiments/docs/comparisons.md, "dSprites").
  config.dataset.update(name='dsprites_procedural', train_split='train[:98%]',
                        eval_split='train[98%:]', image_size=64, channels=1, crop=0,
                        resize='resize', pixel_max=1, shuffle_buffer=20_000, download=True)

  # G input 135 = 128 noise + Cat(3) + 4 x U(-1, 1).
  config.codes.noise_dim = 128
  config.codes.categorical = (3,)
  config.codes.num_continuous = 4
  config.codes.generator_input_dim = 135

  # lgae's cached classifier exists for MNIST only.
  config.eval_generation = False

  if variant == 'cpu':
    apply_cpu_widths(config)
  elif variant == 'smoke':
    mnist.apply_smoke(config)
  return config


# The 'cpu' variant's latent width (module docstring).
CPU_LATENT_DIM = 16
# The dSprites CPU protocol, shared by every method's 'cpu' variant
# (configs/beta_vae_dsprites.py, configs/wae_dsprites.py): batch 64 (the
# beta-VAE literature's usual dSprites batch) for CPU_TRAIN_STEPS updates,
# i.e. 192,000 images, 27 % of one epoch: a CPU cut, far shorter than
# published dSprites runs (~300k steps). A LatentGAN-AE step of this variant
# measured 0.45 s on 2 shared cores (~0.2 s of CPU time; the beta-VAE and
# WAE ~0.17 s), so a run takes ~10-25 minutes there.
CPU_BATCH_SIZE = 64
CPU_TRAIN_STEPS = 3000


def apply_cpu_widths(config):
  """The 'cpu' variant's networks and codes (module docstring), in place."""
  m = config.model
  m.latent_dim = CPU_LATENT_DIM
  m.encoder_features = (32, 32, 64, 64, 128, 128)
  m.decoder_upsample = (4, 2, 2, 2, 2)
  m.decoder_features = (128, 64, 32, 32)
  # The paper's MNIST latent GAN (configs/mnist.py, Table 2).
  m.generator_hidden = (1000, 1000, 1000)
  m.discriminator_hidden = (1000, 1000, 512)
  # G input 23 = 16 noise + Cat(3) + 4 x U(-1, 1).
  config.codes.noise_dim = CPU_LATENT_DIM
  config.codes.generator_input_dim = CPU_LATENT_DIM + 3 + 4
  apply_cpu_schedule(config)


def apply_cpu_schedule(config):
  """The dSprites CPU protocol's batch and length, in place (every method's 'cpu' variant)."""
  config.batch_size = CPU_BATCH_SIZE
  config.num_train_steps = CPU_TRAIN_STEPS
  config.checkpoint_every_steps = CPU_TRAIN_STEPS // 4
  config.eval_every_steps = -1
