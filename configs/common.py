"""Defaults shared by every dataset config.

Each `configs/<dataset>.py` starts from `get_base_config()` and fills in the
paper's architecture table for that dataset. Every field here is documented in
the README ("Config fields"); `lgae.config_validation` checks them all before
anything is compiled.
"""

import ml_collections


def get_base_config() -> ml_collections.ConfigDict:
  """Returns the fields every LatentGAN-AE config has, with paper defaults."""
  config = ml_collections.ConfigDict()

  # Which method `lgae.train` builds (`lgae.methods`): 'latentgan_ae' (the
  # paper's system), 'infogan', 'aae', 'beta_vae', 'wae_mmd', 'cg_aae', 'infovaegan' or
  # 'latent_stats_vae' (`lgae.methods.NAMES`). `config.model` below is the
  # LatentGAN-AE's; other methods' configs replace it with their own group.
  config.model_name = 'latentgan_ae'
  config.seed = 0

  # How the autoencoder and the latent GAN are scheduled.
  # 'joint' (the paper): one combined update of AE, D/Q and G on every batch.
  # 'two_stage' (the l-GAN recipe of Achlioptas et al. 2018): the autoencoder
  #   alone for `two_stage.autoencoder_steps`, then it is frozen, Enc(x) of the
  #   whole train split is cached on device once, and G and D/Q train on the
  #   cached latents alone (no image passes: many times faster per step).
  config.schedule = 'joint'
  config.two_stage = ml_collections.ConfigDict()
  # Stage-1 length; num_train_steps counts both stages (with -1 it is
  # autoencoder_steps + num_epochs epochs of the latent GAN).
  config.two_stage.autoencoder_steps = 2340
  # Non-empty: take the trained autoencoder from this run's latest checkpoint
  # instead of training stage 1 (same encoder, decoder and latent width; G,
  # D/Q and codes may differ); the run starts at step autoencoder_steps.
  # Lets many latent-GAN variants share one encoder.
  config.two_stage.autoencoder_workdir = ''
  # Nearest neighbours per cached latent (Euclidean), for loss.neighbour_weight.
  config.two_stage.num_neighbours = 20
  # The teacher clustering (loss.teacher_weight > 0): UMAP's output width (its
  # neighbours are num_neighbours), and how many GMM initialisations it keeps
  # the best of (by likelihood, label-free).
  config.two_stage.teacher_dims = 10
  config.two_stage.teacher_gmm_inits = 20

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

  config.model = ml_collections.ConfigDict()
  config.model.latent_dim = 64
  # Encoder: one row per conv of the table ("c4-o16-s2-r"), then fc-o<latent_dim>.
  config.model.encoder_features = (16, 32, 64, 128, 128)
  config.model.encoder_kernel = 4
  config.model.encoder_stride = 2
  # Decoder: relu(z) is viewed as a 1x1 image; each block is
  # bilinear-upsample(factor) -> conv3x3(features) -> BatchNorm -> relu, and a
  # last block upsample -> conv3x3(channels) -> tanh.
  config.model.decoder_upsample = (4, 2, 2, 2)
  config.model.decoder_features = (128, 64, 32)
  config.model.decoder_kernel = 3
  config.model.batch_norm_momentum = 0.9
  # How each upsample -> conv pair is evaluated; the function and parameters are
  # the same either way, so checkpoints move freely between the settings.
  # 'auto': resolved when the model is built, from jax.default_backend():
  #   'project_first' on CPU, 'upsample_first' on GPU/TPU.
  # 'project_first': the conv's channel mixing runs at the low resolution and
  #   its k*k tap outputs are upsampled and summed (factor**2 fewer
  #   multiply-adds; ~2x faster MNIST step on CPU, see README "Speed").
  # 'upsample_first': the textbook order, bilinear upsampling then a native
  #   conv; for accelerators, where convs are the fastest op.
  config.model.decoder_upsample_conv = 'auto'
  # Latent GAN: relu MLPs; G ends in a linear fc-o<latent_dim>; D/Q share the
  # trunk and end in three kinds of heads (D logit, continuous means, one
  # categorical head per Cat code).
  config.model.generator_hidden = (1000, 1000, 1000)
  config.model.discriminator_hidden = (1000, 1000, 512)

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
  # Extra signal into the encoder (0 = the paper's literal reading: encoder
  # trained by the reconstruction loss only). See README "Design choices".
  config.loss.encoder_adversarial_weight = 0.0   # AAE-style: Enc tries to look like G to D.
  config.loss.encoder_entropy_weight = 0.0       # Enc makes Q's Cat prediction on Enc(x) confident.
  # Two-stage only, beyond the paper (SCAN / N2D): Q's Cat prediction on a
  # cached latent must agree with its prediction on one of the latent's
  # nearest neighbours (weight), while the batch's mean prediction keeps a
  # high entropy (neighbour_entropy_weight), so all K categories are used.
  # Added to D/Q's loss; 0 = off.
  config.loss.neighbour_weight = 0.0
  config.loss.neighbour_entropy_weight = 2.0
  # Two-stage only, beyond the paper (N2D): cross-entropy of Q's first Cat head
  # on cached latents against a label-free clustering of them (UMAP to
  # two_stage.teacher_dims, then a Gaussian mixture; lgae.latent_teacher), added
  # to D/Q's loss. Needs umap-learn (pip install 'lgae[umap]'). 0 = off.
  config.loss.teacher_weight = 0.0
  # How many latent-GAN steps the teacher term is on for (from the start of
  # stage 2); 0 = all of them. A warm start: after it, Q keeps or leaves the
  # teacher's partition under the remaining terms alone.
  config.loss.teacher_gan_steps = 0

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


def use_padded_mnist(config: ml_collections.ConfigDict) -> None:
  """MNIST as every MNIST config reads it: 28x28 digits zero-padded to 1x32x32."""
  config.dataset.name = 'mnist'
  config.dataset.image_size = 32     # 28x28 digits zero-padded (background) to 32x32.
  config.dataset.resize = 'pad'
  config.dataset.channels = 1


def shrink_schedule_for_smoke(config: ml_collections.ConfigDict) -> None:
  """The schedule of every ':smoke' variant: 6 steps of batch 16, seconds long.

  Each config's `apply_smoke` shrinks its own networks and then calls this.
  """
  config.batch_size = 16
  config.eval_batch_size = 32
  config.num_epochs = 1
  config.num_train_steps = 6
  config.log_every_steps = 2
  config.checkpoint_every_steps = 3
  config.eval_every_steps = 3
  config.eval_generation = False   # no classifier training on tiny data.
  config.dataset.shuffle_buffer = 256
  config.dataset.prefetch = 1
