"""The LatentGAN-AE's config fields: Table 2's networks, the schedule and the extra loss terms.

`config_fields()` is what this method adds to `lgae.core.config.base_config()`
(the optimiser, codes, GAN loss weights and the run's length are shared by
every method). Defaults are the paper's MNIST system (Table 2); the fields
beyond the paper default to off.
"""

import ml_collections


def model_config() -> ml_collections.ConfigDict:
  """`config.model`: the autoencoder (Table 2's Enc/Dec) and the latent GAN's MLPs."""
  model = ml_collections.ConfigDict()
  model.latent_dim = 64
  # Encoder: one row per conv of the table ("c4-o16-s2-r"), then fc-o<latent_dim>.
  model.encoder_features = (16, 32, 64, 128, 128)
  model.encoder_kernel = 4
  model.encoder_stride = 2
  # Decoder: relu(z) is viewed as a 1x1 image; each block is
  # bilinear-upsample(factor) -> conv3x3(features) -> BatchNorm -> relu, and a
  # last block upsample -> conv3x3(channels) -> tanh.
  model.decoder_upsample = (4, 2, 2, 2)
  model.decoder_features = (128, 64, 32)
  model.decoder_kernel = 3
  model.batch_norm_momentum = 0.9
  # How each upsample -> conv pair is evaluated; the function and parameters are
  # the same either way, so checkpoints move freely between the settings.
  # 'auto': resolved when the model is built, from jax.default_backend():
  #   'project_first' on CPU, 'upsample_first' on GPU/TPU.
  # 'project_first': the conv's channel mixing runs at the low resolution and
  #   its k*k tap outputs are upsampled and summed (factor**2 fewer
  #   multiply-adds; ~2x faster MNIST step on CPU, see experiments/docs/speed.md).
  # 'upsample_first': the textbook order, bilinear upsampling then a native
  #   conv; for accelerators, where convs are the fastest op.
  model.decoder_upsample_conv = 'auto'
  # Latent GAN: relu MLPs; G ends in a linear fc-o<latent_dim>; D/Q share the
  # trunk and end in three kinds of heads (D logit, continuous means, one
  # categorical head per Cat code).
  model.generator_hidden = (1000, 1000, 1000)
  model.discriminator_hidden = (1000, 1000, 512)
  return model


def config_fields() -> ml_collections.ConfigDict:
  """`config.model`, `config.schedule`, `config.two_stage` and this method's `config.loss` terms."""
  fields = ml_collections.ConfigDict()
  fields.model = model_config()
  # How the autoencoder and the latent GAN are scheduled.
  # 'joint' (the paper): one combined update of AE, D/Q and G on every batch.
  # 'two_stage' (the l-GAN recipe of Achlioptas et al. 2018): the autoencoder
  #   alone for `two_stage.autoencoder_steps`, then it is frozen, Enc(x) of the
  #   whole train split is cached on device once, and G and D/Q train on the
  #   cached latents alone (no image passes: many times faster per step).
  fields.schedule = 'joint'
  fields.two_stage = ml_collections.ConfigDict()
  # Stage-1 length; num_train_steps counts both stages (with -1 it is
  # autoencoder_steps + num_epochs epochs of the latent GAN).
  fields.two_stage.autoencoder_steps = 2340
  # Non-empty: take the trained autoencoder from this run's latest checkpoint
  # instead of training stage 1 (same encoder, decoder and latent width; G,
  # D/Q and codes may differ); the run starts at step autoencoder_steps.
  # Lets many latent-GAN variants share one encoder.
  fields.two_stage.autoencoder_workdir = ''
  # Nearest neighbours per cached latent (Euclidean), for loss.neighbour_weight.
  fields.two_stage.num_neighbours = 20
  # The teacher clustering (loss.teacher_weight > 0): UMAP's output width (its
  # neighbours are num_neighbours), and how many GMM initialisations it keeps
  # the best of (by likelihood, label-free).
  fields.two_stage.teacher_dims = 10
  fields.two_stage.teacher_gmm_inits = 20

  fields.loss = ml_collections.ConfigDict()
  # Extra signal into the encoder (0 = the paper's literal reading: encoder
  # trained by the reconstruction loss only). See experiments/docs/methods.md, "Design choices".
  fields.loss.encoder_adversarial_weight = 0.0   # AAE-style: Enc tries to look like G to D.
  fields.loss.encoder_entropy_weight = 0.0       # Enc makes Q's Cat prediction on Enc(x) confident.
  # Two-stage only, beyond the paper (SCAN / N2D): Q's Cat prediction on a
  # cached latent must agree with its prediction on one of the latent's
  # nearest neighbours (weight), while the batch's mean prediction keeps a
  # high entropy (neighbour_entropy_weight), so all K categories are used.
  # Added to D/Q's loss; 0 = off.
  fields.loss.neighbour_weight = 0.0
  fields.loss.neighbour_entropy_weight = 2.0
  # Two-stage only, beyond the paper (N2D): cross-entropy of Q's first Cat head
  # on cached latents against a label-free clustering of them (UMAP to
  # two_stage.teacher_dims, then a Gaussian mixture; lgae.methods.latentgan_ae.latent_teacher), added
  # to D/Q's loss. 0 = off.
  fields.loss.teacher_weight = 0.0
  # How many latent-GAN steps the teacher term is on for (from the start of
  # stage 2); 0 = all of them. A warm start: after it, Q keeps or leaves the
  # teacher's partition under the remaining terms alone.
  fields.loss.teacher_gan_steps = 0
  return fields
