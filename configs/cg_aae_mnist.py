r"""MNIST, the AAE with a learned prior (code generator), unsupervised (Wang et al. 2020, Fig. 5).

"Learning priors for adversarial autoencoders", Tables A.1-A.3, on lgae's
32x32 padded MNIST in [-1, 1] (the paper's input is 32x32 too):

  Enc  Input(1x32x32)                    Dec  Input in R^100 (the code)
       c3-o64-s2-r                            fc-o(4x4x512)-bn-r   (its "4x4 upconv 512 s1")
       res3-o64                               upres4-o256-s2
       res3-o128-s2                           upres4-o128-s2
       res3-o256-s2                           upres4-o64-s2
       res3-o512-s2                           c3-o1-tanh
       avg pool (whole map)
       fc-o200-bn-r
       fc-o100

  CG   Input in R^100 = 90 noise z ~ N(0, I) + one-hot s ~ Cat(10)
       fc-o200-bn-r, fc-o100-bn (linear)

  D_I/Q  Input(1x32x32)                  D_C  Input in R^100
         c4-o64-s2-lr                         fc-o1000-lr, fc-o500-lr, fc-o200-lr
         c4-o128-s2-bn-lr                     fc-o1 (sigmoid)
         c4-o256-s2-bn-lr  (= F, Eq. 6)
         D_I: fc-o1 (sigmoid)   Q: fc-o10 (softmax)

  (c: conv, res: residual block conv-r, conv-r, relu(x + r) of Table A.2;
  upres: upconv4-s2-r, conv3-r, relu(skip + r); lr: leaky relu 0.2.)

Paper values: the architecture above (Tables A.1-A.3), s ~ Cat(10) and a 90-d
Gaussian z in the unsupervised MNIST experiment (Sec. IV.D.2), the losses of
Eqs. 4-7 and Algorithm 1 (lgae.methods.cg_aae). Everything else is ours and
marked "Not in the paper" below; the paper gives no optimiser, learning rate,
batch size, number of epochs, code size for this experiment, or loss weights.

The cluster of an image is argmax Q(s | x) (lgae.methods.cg_aae says why).

Variant 'cpu' (the shortened MNIST comparison of experiments/docs/comparisons.md; not the paper's
networks): every conv width divided by 4 -- Enc 16, (16, 32, 64, 128); Dec
from 4x4x128, (64, 32, 16); D_I/Q (16, 32, 64) -- ~1/16 of the conv FLOPs
(202 -> 14 GFLOP per batch of 64, XLA's count); codes, CG, D_C, fc widths kept
(so the 100-d code and Cat(10) are the paper's); 1 epoch (937 updates), as the
AAE row of that table.

Usage:
  python -m experiments.main --config=configs/cg_aae_mnist.py --workdir=/tmp/cg_aae
  python -m experiments.main --config=configs/cg_aae_mnist.py:cpu --workdir=/tmp/cg_aae_cpu
  python -m experiments.main --config=configs/cg_aae_mnist.py:smoke   # tiny, for tests/CI
"""

from configs import common


def get_config(variant: str = 'paper'):
  """Returns the CG-AAE MNIST config: 'paper', 'cpu' (shortened, narrower) or 'smoke' (tests)."""
  common.check_variant(variant, ('paper', 'cpu', 'smoke'), 'CG-AAE MNIST')
  config = common.get_base_config('cg_aae')
  common.use_padded_mnist(config)

  # The CG-AAE's networks and phase options (cg_aae.CGAAE.model_config has
  # every field's comment) are the paper's tables, with these readings:
  # * code_dim = 100. Not in the paper for this experiment: its supervised
  #   experiment keeps CG's output as wide as its input (10 + 54 = 64), and its
  #   Fig. 9 runs MNIST with 100-d codes; so 10 + 90 = 100 here.
  # * encoder_stem_stride = 2. Table A.1 says the stem conv has stride 2 and
  #   the pooling is "4x4 avg pooling": with 32x32 inputs and three stride-2
  #   blocks that leaves a 2x2 map, which a 4x4 pool does not fit. We keep the
  #   stated strides and pool the whole map (stride 1 instead reads the table
  #   as the usual CIFAR ResNet, whose 4x4 map the pool covers exactly, at ~4x
  #   the encoder's cost; both pool the whole map).
  # * encoder_fc = code_generator_hidden = 200: "FC 2 x code size" (Enc) and
  #   "FC 2 x noise size" (CG, whose input is the 100-d [z, s]).
  # * image_disc_features = (64, 128, 256). Table A.3 as extracted is garbled:
  #   after the 64-wide first conv it lists "64 LRELU" again and then "256 BN
  #   LRELU". Not in the paper as we can read it: the DCGAN doubling 64 -> 128
  #   (BN) -> 256 (BN).
  # * Not in the paper: the leaky-relu slope (0.2, DCGAN's) and BatchNorm's
  #   momentum (0.9, as the rest of lgae); lambda (Dec's weight on L_rec) and
  #   the encoder's weight on L^C_GAN are 1 (Algorithm 1 writes lambda without
  #   a value).
  # * phase_schedule = 'both': both phases on every batch, the decoder's two
  #   gradients summed into one Adam step (lgae.methods.cg_aae); 'alternate'
  #   gives each phase every other step.
  config.model.update(code_dim=100, encoder_stem_stride=2, encoder_fc=200,
                      code_generator_hidden=200, image_disc_features=(64, 128, 256),
                      leaky_slope=0.2, batch_norm_momentum=0.9, rec_decoder_weight=1.0,
                      code_adversarial_weight=1.0, phase_schedule='both')

  # Codes: z ~ N(0, I_90), s ~ Cat(10), no U codes; CG's input is [z, one-hot s].
  config.codes.update(noise_dim=90, noise='normal', categorical=(10,), num_continuous=0,
                      generator_input_dim=100)

  # Not in the paper: lambda_I = 1, the weight of L_I (InfoGAN's value for
  # discrete codes; the supervised and unsupervised settings add L_I unweighted
  # in Algorithm 1). Plain 1/0 GAN targets (no label noise mentioned): lgae's
  # defaults.
  config.loss.update(lambda_disc=1.0, lambda_cont=0.0)   # no U codes.

  # Not in the paper: Adam 2e-4, beta1 0.5 (DCGAN's GAN setting; lgae's
  # defaults), beta2 0.999, for all five networks (one optimiser state each).
  config.optimizer.b2 = 0.999

  # Not in the paper: batch 64 (the usual size for these conv GANs) and 20
  # epochs (937 steps each, 18,740 steps), checkpointed every 2 and evaluated
  # every 5. On CPU a step of these residual nets is seconds long
  # (experiments/docs/speed.md); the 20 epochs need an accelerator.
  config.update(batch_size=64, num_epochs=20, log_every_steps=100, checkpoint_every_steps=1874,
                eval_every_steps=4685)

  if variant == 'cpu':
    # Every conv width / 4, derived from the paper's values above; 1 epoch.
    m = config.model
    m.update({name: m[name] // 4 for name in ('encoder_stem_features', 'decoder_base_features')})
    m.update({name: tuple(width // 4 for width in m[name])
              for name in ('encoder_block_features', 'decoder_block_features',
                           'image_disc_features')})
    config.update(num_epochs=1, eval_every_steps=-1, checkpoint_every_steps=937)
  elif variant == 'smoke':
    apply_smoke(config)
  return config


def apply_smoke(config):
  """Shrinks the config to seconds-long runs: same structure (depths), tiny widths."""
  config.model.update(code_dim=8, encoder_stem_features=4, encoder_block_features=(4, 4, 8, 8),
                      encoder_fc=16, decoder_base_features=8, decoder_block_features=(8, 4, 4),
                      code_generator_hidden=16, code_disc_hidden=(16, 16, 8),
                      image_disc_features=(4, 8, 8))
  common.shrink_schedule_for_smoke(config)
