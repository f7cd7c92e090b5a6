"""The LatentGAN-AE's config fields: Table 2's networks, the schedule and the extra loss terms.

`config_fields()` is what this method adds to `lgae.core.config.base_config()`
(the optimiser, codes, GAN loss weights and the run's length are shared by
every method). Defaults are the paper's MNIST system (Table 2); the fields
beyond the paper default to off.
"""

import ml_collections

from lgae.nets import conv


def model_config() -> ml_collections.ConfigDict:
  """`config.model`: the autoencoder (Table 2's Enc/Dec) and the latent GAN's MLPs."""
  model = conv.model_config(latent_dim=64)
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
  # Two-stage only, an ablation beyond the paper: the weight of the latent GAN
  # itself in stage 2 (D's real/fake loss and the MI loss of Q on G's fakes, in
  # D/Q's update). 1 = the method; 0 = no GAN at all: G is neither run nor
  # updated, and D/Q's trunk and Q's heads train on the real-latent terms alone
  # (teacher_weight / neighbour_weight, one of which must then be > 0), i.e. a
  # classifier distilled from the teacher on the frozen latents.
  fields.loss.gan_weight = 1.0
  return fields
