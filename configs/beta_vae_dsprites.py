r"""dSprites, beta-VAE (Higgins et al. 2017), the baseline of Rubenstein et al. (2018).

  Enc  Input(1x64x64)            Dec  Input in R^16 (z)
       c4-o64-s2-r                    fc-o256 (linear), r-u4-c3-o512-p1-bn-r
       c4-o128-s2-r                   u2-c3-o256-p1-bn-r
       c4-o256-s2-r                   u2-c3-o128-p1-bn-r
       c4-o512-s2-r                   u2-c3-o64-p1-bn-r
       c4-o1024-s2-r                  u2-c3-o1-p1-tanh  (Bernoulli logits: 2x the pre-tanh output)
       c4-o128-s2-r
       fc-o32 = [mean (16) | log-variance (16)]

Loss per image: Bernoulli cross-entropy summed over the 4096 pixels +
beta * KL(N(mean, diag(exp(log-variance))) || N(0, I)) summed over z.

Rubenstein et al. (2018) compare WAEs with beta-VAEs on dSprites by the
BetaVAE disentanglement metric (their best 5-factor scores: WAE 98.8 %,
beta-VAE 85.4 %). What they fix, and we follow: latent dimension 16, the
Bernoulli reconstruction loss, the same encoder and decoder for both methods.
Where we differ or they are silent (our choices):

* Architecture: they use the beta-VAE paper's fully connected networks; we
  use lgae's conv encoder and decoder with the widths of configs/dsprites.py
  (the LatentGAN-AE paper's 64x64 table), so that every lgae method on
  dSprites has the same networks. The decoder gets a linear fc(256) before
  its relu (`lgae.nets.conv_vae.ConvAutoencoder` says why); the table's
  decoder starts with that relu.
* beta: 4 in 'paper', the value the beta-VAE paper reports for dSprites (as
  far as we recall, with a 10-d latent); Rubenstein et al. sweep beta in
  {1, 3, 10, 20, 30, 40, 50, 75, 100} and do not say which one scored 85.4 %.
  Override with --config.model.beta.
* Optimiser: neither paper's text here gives it for dSprites (the beta-VAE
  paper used Adagrad, lr 1e-2, as far as we recall; lgae has Adam only).
  We take the WAE paper's MNIST Adam (lr 1e-3, b1 0.5, b2 0.999) for both
  the beta-VAE and the WAE (configs/wae_dsprites.py), so that the two
  differ only in their regulariser.
* Batch 64 (our choice; the beta-VAE literature's usual dSprites batch).
* Length: 20,000 steps (~1.8 epochs of the ~722k training images) is our
  CPU budget: a step of batch 64 measured ~2 s (beta-VAE 2.3 s, WAE 1.9 s)
  on 2 busy, shared CPU cores, so a run is ~11-13 hours. Published dSprites
  runs are far longer (~300k steps in large beta-VAE studies, as far as we
  recall); raise num_train_steps on faster hardware.

Usage:
  python -m experiments.main --config=configs/beta_vae_dsprites.py --workdir=/tmp/bvae
  python -m experiments.main --config=configs/beta_vae_dsprites.py:cpu --workdir=/tmp/bvae_cpu
  python -m experiments.main --config=configs/beta_vae_dsprites.py:smoke   # tiny, for tests/CI
"""

import ml_collections

from configs import common, dsprites
from lgae.methods import beta_vae
from lgae.nets import conv_vae

# z width: Rubenstein et al.'s "latent space dimension of 16" for dSprites.
Z_DIM = 16


def vae_like_dsprites_config(model_name: str, table: str = 'paper') -> ml_collections.ConfigDict:
  """configs/dsprites.py's dataset, networks and schedule for a conv VAE-like method.

  Shared by the beta-VAE and WAE configs. Gives `model_name`'s config the
  encoder/decoder geometry of configs/dsprites.py's variant `table` ('paper':
  the 64x64 table; 'cpu': its CPU widths), the code layout z alone
  (noise_dim = Z_DIM, no Cat, no U codes), and the optimiser, batch and
  length described in this module's docstring.
  """
  config = dsprites.get_config(table)
  networks = config.model
  config = common.for_method(config, model_name)
  for name in conv_vae.CONV_AUTOENCODER_FIELDS:
    config.model[name] = networks[name]
  config.model.latent_dim = Z_DIM
  # generate() decodes prior draws of z: the layout is z alone.
  config.codes.update(noise_dim=Z_DIM, noise='normal', categorical=(), num_continuous=0,
                      generator_input_dim=Z_DIM)
  # The WAE paper's MNIST Adam, for both methods (module docstring).
  config.optimizer.update(learning_rate=1e-3, b1=0.5, b2=0.999)
  apply_schedule(config)
  return config


def apply_schedule(config: ml_collections.ConfigDict) -> None:
  """Batch 64 for 20,000 steps (module docstring) and what evaluation scores on dSprites.

  Neither lgae's cached classifier (MNIST's) nor the latent diagnostics (a
  latent-space G's fit and clusterings scored against class labels) apply:
  dSprites has no class label.
  """
  config.update(batch_size=64, num_train_steps=20_000, log_every_steps=100,
                checkpoint_every_steps=2_000, eval_every_steps=5_000, eval_generation=False,
                eval_latent_diagnostics=False)


def apply_smoke(config: ml_collections.ConfigDict) -> None:
  """Seconds-long runs: same structure (six convs, four decoder blocks), tiny widths."""
  config.model.encoder_features = tuple(min(f, 8) for f in config.model.encoder_features)
  config.model.decoder_features = tuple(min(f, 8) for f in config.model.decoder_features)
  config.model.decoder_fc = 16
  common.shrink_schedule_for_smoke(config)


def get_config(variant: str = 'paper') -> ml_collections.ConfigDict:
  """Returns the beta-VAE dSprites config: 'paper' (beta = 4), 'cpu' or 'smoke' (tests).

  'cpu': configs/dsprites.py:cpu's networks (16-d z as here) and its CPU protocol's length.
  """
  common.check_variant(variant, ('paper', 'cpu', 'smoke'), 'beta-VAE dSprites')
  config = vae_like_dsprites_config(beta_vae.BetaVAE.name, 'cpu' if variant == 'cpu' else 'paper')
  config.model.beta = 4.0
  config.model.reconstruction = 'bernoulli'   # binary images; Rubenstein et al.'s loss.
  if variant == 'smoke':
    apply_smoke(config)
  elif variant == 'cpu':
    dsprites.apply_cpu_schedule(config)   # replaces vae_like_dsprites_config's batch and length.
  return config
