r"""InfoVAEGAN on MNIST (Ye & Bors 2021, Sec. 5.2; Table 1: 95.65 % unsupervised accuracy).

The paper gives no table for its unsupervised networks; it says it uses "the
same network architecture and hyperparameter configurations for all methods"
(InfoGAN, ALI, InfoVAEGAN), so ours are InfoGAN's MNIST networks (Chen et al.
2016, Appendix C.1; configs/infogan_mnist.py), on lgae's 32x32 padded MNIST
in [-1, 1]:

  G  Input in R^74                E  Input(1x32x32)           D  Input(1x32x32), [s, c] in R^12
     fc-o1024-bn-r                   c4-o64-s2-lr                c4-o64-s2-lr
     fc-o8192-bn-r (8x8x128)         c4-o128-s2-bn-lr            c4-o128-s2-bn-lr
     uc4-o64-s2-bn-r                 fc-o1024-bn-lr              concat [s, c] (8192 + 12)
     uc4-o1-s2-tanh                  fc-o128-bn-lr               fc-o1024-bn-lr
                                     fc-o10 (logits of s),       fc-o1 (logit)
                                     fc-o2 (mean), fc-o2 (log-var of c)

  (c: conv, uc: transposed conv, lr: leaky relu 0.1, bn: BatchNorm.)

  | quantity                   | paper (Sec. 5.2)            | here                           |
  |----------------------------|-----------------------------|--------------------------------|
  | discrete code s            | Cat(K = 10, p = 0.1)        | Cat(10)                        |
  | continuous codes c         | 2 x U(-1, 1)                | 2 x U(-1, 1)                   |
  | noise z                    | Gaussian (Sec. 4.1), width? | 62 x N(0, 1) (InfoGAN's width) |
  | posterior of c             | Gaussian (Eq. 7)            | N(mu, diag(sigma^2)), from E   |
  | posterior of s             | Gumbel-softmax (Eq. 8), T?  | T = 0.67 (JointVAE's)          |
  | KL prior of c              | Gaussian (Eq. 27)           | N(0, I)                        |
  | optimiser, batch, length   | "same as InfoGAN"           | InfoGAN's: Adam G/E 1e-3, D    |
  |                            |                             | 2e-4, b1 0.5, b2 0.999; batch  |
  |                            |                             | 128; 50 epochs                 |

Choices where the paper is silent (all overridable, see lgae/methods/infovaegan.py):
lambda_disc = lambda_cont = 1 (the MI terms' weights; the paper writes none,
InfoGAN's MNIST run uses 1 for both); the Bernoulli likelihood of L_VAE;
encoder_gan_weight = 1 (Eq. 16; Eq. 29 would give E no adversarial signal);
D sees straight-through one-hot s for real images; E uses G's Adam.

Variant 'cpu' (the shortened MNIST comparison of experiments/docs/comparisons.md; not the paper's
networks): every width halved -- G fc 512 to an 8x8x64 map, uc-o32; E and
D convs 32, 64, fc 512, E's hidden 64 -- which is ~1/4 of the FLOPs
(95 -> 24 GFLOP per batch of 128, XLA's count), and InfoGAN's shortened length in that
table, 2,340 updates (5 epochs). Codes, losses and optimiser as above.

Usage:
  python -m experiments.main --config=configs/infovaegan_mnist.py --workdir=/tmp/infovaegan
  python -m experiments.main --config=configs/infovaegan_mnist.py:cpu --workdir=/tmp/ivg_cpu
  python -m experiments.main --config=configs/infovaegan_mnist.py:smoke   # tiny, for tests/CI
"""

from configs import common, infogan_mnist


def get_config(variant: str = 'paper'):
  """Returns the InfoVAEGAN MNIST config: 'paper', 'cpu' (every width halved) or 'smoke' (tests)."""
  common.check_variant(variant, ('paper', 'cpu', 'smoke'), 'InfoVAEGAN MNIST')
  # InfoGAN's MNIST config (configs/infogan_mnist.py) for everything the
  # methods share (the paper: the same hyper-parameters for all methods):
  # padded MNIST, codes G input 74 = 62 noise + Cat(10) + 2 x U(-1, 1), the
  # MI terms' weights (Eq. 30 writes them unweighted), InfoGAN's Adam (G's
  # settings for E too: lr 1e-3, D 2e-4, b1 0.5, b2 0.999), batch 128, 50
  # epochs of 468 steps (the paper gives no length). config.model: InfoVAEGAN's
  # defaults, the table above.
  config = common.for_method(infogan_mnist.get_config('paper'), 'infovaegan')
  # The paper gives the codes (Sec. 5.2) but not the noise width: InfoGAN's 62.
  # The noise is Gaussian, as the paper's Sec. 4.1 and Algorithm 1 say
  # (InfoGAN's reference code draws U(-1, 1); set codes.noise = 'uniform' for that).
  config.codes.noise = 'normal'

  if variant == 'cpu':
    # Every width halved, derived from the paper's values above; 5 epochs,
    # 2,340 updates, as InfoGAN's row in that comparison.
    m = config.model
    m.update({name: m[name] // 2
              for name in ('generator_fc', 'encoder_fc', 'encoder_hidden', 'discriminator_fc')})
    m.update({name: tuple(width // 2 for width in m[name])
              for name in ('generator_features', 'encoder_features', 'discriminator_features')})
    config.update(num_epochs=5, eval_every_steps=-1, checkpoint_every_steps=468)
  elif variant == 'smoke':
    apply_smoke(config)
  return config


def apply_smoke(config):
  """Shrinks the config to seconds-long runs: same structure, small widths."""
  config.model.update(generator_fc=32, generator_features=(16, 8), encoder_features=(8, 16),
                      encoder_fc=32, encoder_hidden=16, discriminator_features=(8, 16),
                      discriminator_fc=32)
  common.shrink_schedule_for_smoke(config)
