r"""dSprites (procedural, 64x64x1): the paper's 64x64 networks (Table 3, 3D Chairs).

The paper has no dSprites experiment. This config reuses its 64x64 table (see
configs/chairs.py) and sizes the codes to dSprites' factors: one Cat(3) for
the shape and four U(-1, 1) codes for scale, orientation, x and y.

Data: the `dsprites_procedural` tfds builder in `lgae.datasets` renders the
737,280 images of the dSprites grid (Matthey et al. 2017), no download; it has
the features of tfds' `dsprites`, whose prepared copy works too with
`config.dataset.name = 'dsprites'`. Images are stored as 0/1 (not 0/255), as
in the release.

Usage:
  python -m experiments.main --config=configs/dsprites.py --workdir=/tmp/dsprites
  python -m experiments.main --config=configs/dsprites.py:smoke   # tiny, for tests/CI
"""

from configs import chairs, mnist


def get_config(variant: str = 'paper'):
  """Returns the dSprites config; `variant='smoke'` shrinks it for tests."""
  config = chairs.get_config('paper')
  config.dataset.name = 'dsprites_procedural'
  # One split, stored in tfds' key-hash order (as tfds' own `dsprites`), so
  # these slices are fixed pseudo-random subsets of the grid; 2% = 14,746
  # held-out images keep evaluation short.
  config.dataset.train_split = 'train[:98%]'
  config.dataset.eval_split = 'train[98%:]'
  config.dataset.image_size = 64
  config.dataset.channels = 1
  config.dataset.crop = 0
  config.dataset.resize = 'resize'   # stored at 64x64: a no-op.
  config.dataset.pixel_max = 1       # stored 0/1: white must become 1.0, not -0.99.
  config.dataset.shuffle_buffer = 20_000
  # Nothing to download: tfds renders the dataset when it is first prepared
  # (about 8 minutes on 2 CPU cores; README "dSprites (procedural)").
  config.dataset.download = True

  # G input 135 = 128 noise + Cat(3) + 4 x U(-1, 1).
  config.codes.noise_dim = 128
  config.codes.categorical = (3,)
  config.codes.num_continuous = 4
  config.codes.generator_input_dim = 135

  # lgae's cached classifier exists for MNIST only.
  config.eval_generation = False

  if variant == 'smoke':
    mnist.apply_smoke(config)
  elif variant != 'paper':
    raise ValueError(
        f"Unknown dSprites config variant {variant!r}; use 'paper' or 'smoke'.")
  return config
