"""DCGAN-style image networks of the InfoGAN paper (Chen et al. 2016, Appendix C.1).

InfoGAN's generator and its D/Q conv trunk, shared by the image-space GAN
baselines: InfoGAN (`lgae.methods.infogan`), InfoVAEGAN's G, encoder and
joint D (`lgae.methods.infovaegan`), and the CG-AAE's D_I/Q and up-sampling
blocks (`lgae.methods.cg_aae`). Images are NHWC in [-1, 1]. No bias precedes
a BatchNorm (its shift subsumes it).

  G       fc-bn-relu, fc to an (s / 2**L)^2 x features[0] map (bn-relu), then a
          4x4 stride-2 transposed conv (bn-relu) per further width and a last
          one to the image's channels with tanh (`Generator`)
  trunk   a 4x4 stride-2 conv per width, BatchNorm after all but the first
          (DCGAN's rule), leaky relu after each (`conv_trunk`, `ConvTrunk`)
"""

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

# The 4x4 stride-2 transposed conv, per axis: output 2i + phase reads input
# i + offset through kernel tap `tap`, for these (tap, offset) pairs.
_PHASE_TAPS = {0: ((0, -1), (2, 0)), 1: ((1, 0), (3, 1))}


class ConvTranspose4x4(nn.Module):
  """A 4x4, stride-2 transposed conv with SAME padding (output 2H x 2W), computed low-res.

  Same parameter (`kernel` [4, 4, in, out], optional `bias`), initialisation
  and function as `nn.ConvTranspose(out, (4, 4), strides=(2, 2),
  padding='SAME')`: output row 2i reads input rows i - 1 and i through kernel
  rows 0 and 2, row 2i + 1 reads rows i and i + 1 through kernel rows 1 and 3
  (`_PHASE_TAPS`; columns alike). So one matmul projects every input pixel on
  all 16 taps, and each of the four output phases is a sum of four shifted
  (zero-filled) tap maps. The point is speed: XLA:CPU lowers the transposed
  conv's input-dilated form to slow generic convolutions (G's 128 -> 64 layer,
  forward + backward, took ~5x as long as this).
  """

  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    n, h, w, c = x.shape
    kernel = self.param('kernel', nn.linear.default_kernel_init, (4, 4, c, self.features))
    taps = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(c, 16 * self.features)
    projected = jnp.dot(x.reshape(n * h * w, c), taps).reshape(n, h, w, 4, 4, self.features)
    # One zero row/column on each side: the reads at offsets -1 and +1.
    projected = jnp.pad(projected, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)))
    rows = []
    for a in range(2):
      phases = []
      for b in range(2):
        phases.append(sum(projected[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w, ty, tx]
                          for ty, dy in _PHASE_TAPS[a] for tx, dx in _PHASE_TAPS[b]))
      rows.append(jnp.stack(phases, axis=3))          # [n, h, w, 2 (column phase), out]
    y = jnp.stack(rows, axis=2).reshape(n, 2 * h, 2 * w, self.features)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return y


class Generator(nn.Module):
  """G: [noise, one-hot Cat codes, U codes] -> an image in [-1, 1].

  fc-bn-relu, fc to a (s / 2**L) x (s / 2**L) x features[0] map (bn-relu),
  then a 4x4 stride-2 transposed conv (bn-relu) per further entry of
  `features`, and a last one to `out_channels` with tanh: L = len(features)
  doublings in all.
  """

  fc: int
  features: Sequence[int]
  out_channels: int
  image_size: int
  batch_norm_momentum: float = 0.9

  @nn.compact
  def __call__(self, g_input: jax.Array, *, train: bool) -> jax.Array:
    bn = lambda name: nn.BatchNorm(use_running_average=not train,
                                   momentum=self.batch_norm_momentum, name=name)
    side = self.image_size // 2 ** len(self.features)
    x = nn.relu(bn('bn_fc')(nn.Dense(self.fc, use_bias=False, name='fc')(g_input)))
    x = nn.Dense(side * side * self.features[0], use_bias=False, name='fc_map')(x)
    x = nn.relu(bn('bn_map')(x))
    x = x.reshape((x.shape[0], side, side, self.features[0]))
    for i, f in enumerate(self.features[1:]):
      x = ConvTranspose4x4(f, use_bias=False, name=f'upconv{i}')(x)
      x = nn.relu(bn(f'bn_upconv{i}')(x))
    return jnp.tanh(ConvTranspose4x4(self.out_channels, name='upconv_out')(x))


def is_generator_output_conv(module: nn.Module, method_name: str) -> bool:
  """capture_intermediates filter: `Generator`'s last transposed conv a, with G = tanh(a)."""
  return method_name == '__call__' and module.name == 'upconv_out'


def generator_pre_tanh(intermediates: Any) -> jax.Array:
  """G's last transposed conv output a (G = tanh(a)) from captured intermediates."""
  return intermediates['upconv_out']['__call__'][0]


def conv_trunk(x: jax.Array, features: Sequence[int], *, train: bool, leaky_slope: float,
               batch_norm_momentum: float, bn_prefix: str = 'bn_conv') -> jax.Array:
  """InfoGAN's D/Q conv trunk on images x, as layers of the calling compact module.

  A 4x4 stride-2 conv with padding 1 per entry (each halves H and W), named
  conv<i>; BatchNorm after all but the first (DCGAN's rule; named
  <bn_prefix><i>), so only the first conv has a bias; leaky relu after each.
  Returns the last map [N, H', W', features[-1]].

  A function rather than a module so that a network whose trunk is inline
  (InfoGAN's D/Q, the CG-AAE's D_I/Q) keeps its parameter names.
  """
  for i, f in enumerate(features):
    x = nn.Conv(f, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=i == 0,
                name=f'conv{i}')(x)
    if i > 0:
      x = nn.BatchNorm(use_running_average=not train, momentum=batch_norm_momentum,
                       name=f'{bn_prefix}{i}')(x)
    x = nn.leaky_relu(x, leaky_slope)
  return x


class ConvTrunk(nn.Module):
  """`conv_trunk` as a module of its own: returns the flattened last map [N, F]."""

  features: Sequence[int]
  leaky_slope: float = 0.1
  batch_norm_momentum: float = 0.9

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = conv_trunk(x, self.features, train=train, leaky_slope=self.leaky_slope,
                   batch_norm_momentum=self.batch_norm_momentum)
    return x.reshape((x.shape[0], -1))


def model_config() -> ml_collections.ConfigDict:
  """The `config.model` fields of `Generator` and the trunks' activations, at InfoGAN's MNIST values.

  Each method adds the widths of its trunks and heads.
  """
  m = ml_collections.ConfigDict()
  # G: fc-o<generator_fc>-bn-relu, then fc to an (s / 2**L) x (s / 2**L) x
  # generator_features[0] map (bn-relu), then a 4x4 stride-2 transposed conv
  # (bn-relu) per further entry, and a last one to dataset.channels with tanh;
  # L = len(generator_features) doublings (paper: 7x7x128 -> 14x14x64 -> 28x28).
  m.generator_fc = 1024
  m.generator_features = (128, 64)
  m.leaky_slope = 0.1            # the InfoGAN paper's lRELU slope, in every conv trunk.
  # Running averages: stat <- momentum * stat + (1 - momentum) * batch stat
  # (0.9: TensorFlow-era batchnorm decay of the reference code's time).
  m.batch_norm_momentum = 0.9
  return m


def build_generator(config: ml_collections.ConfigDict) -> Generator:
  """G from config.model (generator_fc, generator_features, batch_norm_momentum) and
  config.dataset (the image's side and channels)."""
  m = config.model
  return Generator(fc=m.generator_fc, features=tuple(m.generator_features),
                   out_channels=config.dataset.channels, image_size=config.dataset.image_size,
                   batch_norm_momentum=m.batch_norm_momentum)


def validate_widths(config: ml_collections.ConfigDict, need: Callable[[bool, str], None],
                    stacks: Sequence[str], widths: Sequence[str], networks: str) -> None:
  """Checks of a `config.model` made of these networks (`networks` names them in messages).

  Args:
    config: the config.
    need: need(ok, message) records `message` if not ok.
    stacks: the fields that list the widths of a stride-2 stack (G's
      transposed convs, a conv trunk): non-empty, positive ints, and
      dataset.image_size must halve (or double) evenly through the longest.
    widths: the fields that are one layer's width (> 0).
    networks: e.g. "InfoGAN's G and D".
  """
  m, d = config.model, config.dataset
  for name in stacks:
    value = tuple(m[name])
    need(len(value) > 0 and all(isinstance(v, int) and v > 0 for v in value),
         f'config.model.{name}={value} must be a non-empty sequence of positive ints.')
  for name in widths:
    need(m[name] > 0, f'config.model.{name}={m[name]} must be > 0.')
  need(0 <= m.leaky_slope < 1, f'config.model.leaky_slope={m.leaky_slope} must be in [0, 1).')
  need(0 <= m.batch_norm_momentum < 1,
       f'config.model.batch_norm_momentum={m.batch_norm_momentum} must be in [0, 1).')
  # G doubles the side once per transposed conv from an integer side; a trunk
  # halves it once per conv with even sides throughout.
  doublings = max([len(m[name]) for name in stacks] + [1])
  factor = 2 ** doublings
  need(d.image_size % factor == 0 and d.image_size >= factor,
       f'config.dataset.image_size={d.image_size} must be a positive multiple of {factor} '
       f'({networks} change the side by 2 in each of up to {doublings} stride-2 layers): '
       'pick another image_size (MNIST: 32 with resize=pad).')
