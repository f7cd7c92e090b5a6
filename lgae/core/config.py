"""The config schema: the fields every config has, and a method's on top of them.

A config is `base_config()` updated by its method's `config_fields()`
(`schema`); `configs/` builds every experiment from `default_config` and
fills in a paper's tables. `lgae.core.config_validation` checks a config
against its schema before anything is built or compiled.
"""

import ml_collections

from lgae.core import method as method_lib


def base_config() -> ml_collections.ConfigDict:
  """The fields every config has, whatever its method, with their defaults."""
  config = ml_collections.ConfigDict()

  # Which method `lgae.train` builds (one of `lgae.methods.NAMES`; set by
  # `schema`). The method adds its own fields (`Method.config_fields`): at
  # least `config.model`, its networks.
  config.model_name = ''
  config.seed = 0

  config.dataset = ml_collections.ConfigDict()
  # Any tfds dataset with a uint8 'image' feature ('mnist', 'cifar10', 'celeb_a',
  # lgae's 'rendered_chairs', ...); a ClassLabel 'label' feature, if any, is the class.
  config.dataset.name = ''
  config.dataset.data_dir = ''      # '' = $TFDS_DATA_DIR, else tfds' default (~/tensorflow_datasets).
  # Not prepared in the data dir: let tfds download and prepare it (needs internet;
  # offline, or with False, the run stops at once saying how to prepare it).
  config.dataset.download = True
  config.dataset.train_split = 'train'
  config.dataset.eval_split = 'test'
  config.dataset.image_size = 32    # images are square, [-1, 1], NHWC.
  config.dataset.channels = 1       # 1 <-> 3 is converted (grey <-> RGB).
  # Preprocessing, in this order: central crop_x_crop square (0 = none), then to
  # image_size by 'resize' (antialiased) or 'pad' (centred on background 0: smaller
  # images only, MNIST's 28 -> 32).
  config.dataset.crop = 0
  config.dataset.resize = 'resize'
  # The stored value of a white pixel: 255 for almost every tfds dataset,
  # 1 for dSprites (binary 0/1 images); scaled to 0..255 before the above.
  config.dataset.pixel_max = 255
  config.dataset.shuffle_buffer = 60_000
  config.dataset.prefetch = 4

  config.model = ml_collections.ConfigDict()   # the method's networks.

  # G's input: Gaussian noise, then one one-hot block per Cat(K) code, then
  # the U(-1, 1) codes; its width is noise_dim + sum(K) + num_continuous.
  config.codes = ml_collections.ConfigDict()
  config.codes.noise_dim = 64
  # The noise block's prior: 'normal' (N(0, I): the paper's p) or 'uniform'
  # (U(-1, 1): InfoGAN's reference code, configs/infogan_mnist.py).
  config.codes.noise = 'normal'
  config.codes.categorical = (10,)
  config.codes.num_continuous = 2
  # The table's G input width ("Input in R^76"), checked against the layout.
  config.codes.generator_input_dim = 76

  config.loss = ml_collections.ConfigDict()
  config.loss.lambda_disc = 0.1     # weight of the categorical MI term.
  config.loss.lambda_cont = 1.0     # weight of the continuous MI term.
  # "Noisy labels for D help" (paper, Implementation Details): D's targets are
  # real_label / fake_label, each flipped with probability label_flip_prob.
  config.loss.real_label = 1.0
  config.loss.fake_label = 0.0
  config.loss.label_flip_prob = 0.0
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.9
  # D/Q's own Adam, beyond the paper (which shares one): > 0 / >= 0 overrides
  # learning_rate / b1 for the discriminator/Q network only; the defaults keep
  # the shared optimiser.
  config.optimizer.disc_learning_rate = 0.0
  config.optimizer.disc_b1 = -1.0

  config.batch_size = 128           # global batch, split over all devices.
  config.num_epochs = 10
  config.num_train_steps = -1       # -1: num_epochs * steps_per_epoch.
  config.log_every_steps = 50
  config.checkpoint_every_steps = 1000
  config.eval_every_steps = 1000    # -1: evaluate only at the end; 0: never (experiments.evaluate).
  config.eval_batch_size = 512      # eval batches are padded to this size (divides 1-512 devices).
  # Also score generated images (Frechet distance, label accuracy of Cat(k))
  # with lgae's cached classifier, where the dataset has one (MNIST).
  config.eval_generation = True
  # Also explain a run in latent space: how well G matches Enc(x_test)
  # (Frechet distance, k-NN precision/recall) and how well the latent itself
  # clusters (k-means and a Gaussian mixture fitted on Enc(x_train)); costs
  # one encoder pass over the train split and a few CPU seconds of fitting.
  config.eval_latent_diagnostics = True
  config.max_checkpoints_to_keep = 3
  return config


def merge(base: ml_collections.ConfigDict, extra: ml_collections.ConfigDict) -> None:
  """Adds `extra`'s fields to `base`, in place; a group extends the group of the same name."""
  with base.unlocked():
    for name, value in extra.items():
      if isinstance(value, ml_collections.ConfigDict) and isinstance(
          base.get(name), ml_collections.ConfigDict):
        merge(base[name], value)
      else:
        base[name] = value


def schema(method: method_lib.Method) -> ml_collections.ConfigDict:
  """Every field of a config of `method`, at its default."""
  config = base_config()
  config.model_name = method.name
  merge(config, method.config_fields())
  return config


def default_config(model_name: str) -> ml_collections.ConfigDict:
  """The schema of the method `model_name` (`lgae.methods.NAMES`), at its defaults."""
  return schema(method_lib.get(model_name))
