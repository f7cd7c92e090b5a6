r"""MNIST, VAE / MMD-VAE with the latent-statistics categorical generator (Vargas Aguilar et al.).

The paper's networks (its Tables 1-2), d in {2, 10, 20}:

  Table 1: Encoder                     Table 2: Decoder
  Input         784 x 1    -           z                {2, 10, 20} x 1   -
  Fully conn.   500        softplus    Fully conn.      500               softplus
  Fully conn.   500        softplus    Fully conn.      500               softplus
  Output        {2,10,20} x 2  -       Output           784 x 1           sigmoid

Ours: the same layers on lgae's 32x32 zero-padded MNIST, so the input and
the decoder's output are 1024 wide instead of 784 (lgae's classifier, which
scores generated images, reads 32x32), and the decoder ends in tanh on
[-1, 1] pixels (tanh(a) = 2 sigmoid(2a) - 1: the same Bernoulli decoder,
logits 2a). Parameters at d = 20: encoder 783,040, decoder 774,024.

The generator ("Simple", Eq. 3): z_y = mean of n draws of N(mu_y, theta sigma_y),
mu_y / sigma_y the class's mean / std of the encodings; the paper's grid is
theta in {0, 0.1, ..., 1} x n in {1, 2, 3, 5}, scored by Eq. 4 (mean
within-class cosine similarity of generated images + 1 - accuracy):

  Table 4           theta / n   cos(x, x')   acc
  ELBO-20 Simple    0.4 / 2     0.9200       0.995
  MMD-20 Simple     0.6 / 3     0.8870       0.9968

Variants ('<divergence>[_d<d>]' or 'smoke'):
  'kl'  (default) the ELBO VAE, d = 20, theta / n = 0.4 / 2 (Table 4's ELBO-20 row).
  'mmd'           the MMD-VAE, d = 20, theta / n = 0.6 / 3 (Table 4's MMD-20 row).
  'kl_d2', 'kl_d10', 'mmd_d2', 'mmd_d10': the paper's other latent widths
                  (same theta / n: the paper reports d = 20 only).
  'smoke', 'mmd_smoke': tiny widths and 6 steps, for tests.

Where the paper is silent (our choices):
* Batch 100 (600 whole steps per MNIST epoch) and 30 epochs (18,000 steps).
* Adam lr 1e-3 (the paper) with Adam's usual b1 0.9, b2 0.999 (not stated).
* MMD-VAE: Gaussian kernel exp(-||a - b||^2 / c) with c = 2 d (the expected
  squared distance of two prior draws; the WAE module's convention), the
  unbiased estimator, and weight lambda = 1000 against the per-image
  Bernoulli sum. The paper cites InfoVAE (arXiv 1706.02262); the widely
  copied MMD-VAE tutorial code of its authors uses c = d^2 (wider) and adds
  the MMD to a per-pixel *mean* reconstruction error, i.e. weighs it ~(number
  of pixels) times more than a per-image sum would: 1000 ~ our 1024 pixels.
  Override with --config.model.mmd_weight / --config.model.mmd_kernel_scale.
* The statistics are of the posterior means, forgotten at 0.998 per step
  (~ the last 500 steps' encodings, lgae.methods.latent_stats_vae).
* theta scales the standard deviation (the text also says "multiplying a
  hyper-parameter to the observed variance"; Eq. 3 writes N(mu, theta sigma)).

Usage:
  python -m experiments.main --config=configs/latent_stats_vae_mnist.py --workdir=/tmp/lsvae
  python -m experiments.main --config=configs/latent_stats_vae_mnist.py:mmd --workdir=/tmp/lsmmd
  python -m experiments.main --config=configs/latent_stats_vae_mnist.py:smoke   # tiny, for tests
  A (theta, n) setting: --config.model.theta=0.6 --config.model.num_draws=3
    --config.codes.noise_dim=60 --config.codes.generator_input_dim=70 (noise_dim = n d).
"""

import ml_collections

from configs import common
from lgae.methods import latent_stats_vae

# Table 4's best Simple generator per objective at d = 20: (theta, n).
_PAPER_THETA_N = {'kl': (0.4, 2), 'mmd': (0.6, 3)}
# The paper's latent widths; 20 is its Fig. 1 / Table 4 setting.
_LATENT_DIMS = (2, 10, 20)
_NUM_CLASSES = 10


def get_config(variant: str = 'kl') -> ml_collections.ConfigDict:
  """Returns the config of `variant` (module docstring)."""
  tokens = variant.split('_')
  smoke = tokens[-1] == 'smoke'
  head = tokens[:-1] if smoke else tokens
  divergence = head[0] if head else 'kl'
  dims = head[1:]
  if (divergence not in latent_stats_vae.DIVERGENCES or len(dims) > 1 or
      (dims and dims[0] not in {f'd{d}' for d in _LATENT_DIMS})):
    raise ValueError(f'Unknown latent-statistics VAE config variant {variant!r}; use kl, mmd, '
                     "kl_d2, kl_d10, mmd_d2, mmd_d10, smoke or mmd_smoke.")
  latent_dim = int(dims[0][1:]) if dims else 20

  config = common.get_base_config('latent_stats_vae')
  common.use_padded_mnist(config)
  config.model.latent_dim = latent_dim
  config.model.divergence = divergence
  config.model.theta, config.model.num_draws = _PAPER_THETA_N[divergence]
  set_codes(config)

  # The paper: Adam, learning rate 1e-3; the betas are Adam's usual ones.
  config.optimizer.update(learning_rate=1e-3, b1=0.9, b2=0.999)

  # Checkpoints every 3 epochs, evaluation every 10.
  config.update(batch_size=100, num_epochs=30, log_every_steps=100, checkpoint_every_steps=1800,
                eval_every_steps=6000)
  if smoke:
    apply_smoke(config)
  return config


def set_codes(config: ml_collections.ConfigDict) -> None:
  """The layout `generate` decodes: Cat(10) = the digit y, then n * d N(0, I) draws (Eq. 3)."""
  noise_dim = config.model.num_draws * config.model.latent_dim
  config.codes.update(noise_dim=noise_dim, noise='normal', categorical=(_NUM_CLASSES,),
                      num_continuous=0, generator_input_dim=noise_dim + _NUM_CLASSES)


def apply_smoke(config: ml_collections.ConfigDict) -> None:
  """Seconds-long runs: the same structure (two softplus layers each way), tiny widths."""
  config.model.update(encoder_hidden=(32, 32), decoder_hidden=(32, 32), latent_dim=4)
  set_codes(config)
  common.shrink_schedule_for_smoke(config)
