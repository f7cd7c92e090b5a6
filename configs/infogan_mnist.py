r"""InfoGAN on MNIST: the InfoGAN paper's architecture (Chen et al. 2016, Appendix C.1).

The LatentGAN-AE paper's Table 1 comparator, trained in image space on lgae's
32x32 padded MNIST in [-1, 1] (the paper's is 28x28 in [0, 1], hence 8x8 for
its 7x7 map and tanh for its sigmoid):

  D/Q  Input(1x32x32)                          G  Input in R^74
       c4-o64-s2-lr                               fc-o1024-bn-r
       c4-o128-s2-bn-lr                           fc-o8192-bn-r (8x8x128)
       fc-o1024-bn-lr                             uc4-o64-s2-bn-r
       D: fc-o1      Q: fc-o128-bn-lr,            uc4-o1-s2-tanh
                        fc-o10, fc-o2

  (c: conv, uc: transposed conv, lr: leaky relu 0.1, bn: BatchNorm.)

Usage:
  python -m experiments.main --config=configs/infogan_mnist.py --workdir=/tmp/infogan_mnist
  python -m experiments.main --config=configs/infogan_mnist.py:smoke   # tiny, for tests/CI
"""

from configs import common


def get_config(variant: str = 'paper'):
  """Returns the InfoGAN MNIST config; `variant='smoke'` shrinks it for tests."""
  common.check_variant(variant, ('paper', 'smoke'), 'InfoGAN MNIST')
  config = common.get_base_config('infogan')
  common.use_padded_mnist(config)

  # G input 74 = 62 noise + Cat(10) + 2 x U(-1, 1) (the paper's MNIST codes).
  # The reference code draws its 62 noise dims from U(-1, 1), as here (with
  # N(0, I) noise, Q learnt the Cat code far more slowly in a small test run:
  # the one-hot code is then a smaller part of G's input).
  config.codes.update(noise_dim=62, noise='uniform', categorical=(10,), num_continuous=2,
                      generator_input_dim=74)

  # The paper (Sec. 5) sets lambda to 1 for discrete codes and says a smaller
  # lambda is typically used for continuous ones, to keep lambda * L_I (a
  # differential entropy) on the GAN loss's scale; its MNIST reference run
  # (info_reg_coeff=1.0) uses 1 for both, with Q's Gaussians at fixed unit
  # variance, as here.
  config.loss.update(lambda_disc=1.0, lambda_cont=1.0)
  apply_optimizer(config)

  # The reference code's MNIST run: batch 128, 50 "epochs" of 100 updates
  # (5,000 updates). Ours are 50 full passes (468 steps each, 23,400 steps),
  # a larger budget than the reference's: our choice. Evaluated and
  # checkpointed every 5 epochs.
  config.update(batch_size=128, num_epochs=50, eval_every_steps=2340,
                checkpoint_every_steps=2340)

  if variant == 'smoke':
    apply_smoke(config)
  return config


def apply_optimizer(config):
  """The paper's MNIST optimisers: Adam, lr 1e-3 for G and 2e-4 for D/Q, beta1 0.5.

  beta2 0.999 is the reference code's (TensorFlow's default), not lgae's
  default 0.9.
  """
  config.optimizer.update(learning_rate=1e-3, disc_learning_rate=2e-4, b1=0.5, b2=0.999)


def apply_smoke(config):
  """Shrinks the config to seconds-long runs: same structure, small widths."""
  config.model.update(generator_fc=32, generator_features=(16, 8), discriminator_features=(8, 16),
                      discriminator_fc=32, q_hidden=16)
  common.shrink_schedule_for_smoke(config)
