"""Conv encoder and decoder stacks (Tables 2-4 of Kalwar et al.), their geometry checks and builder.

One set of classes serves every dataset and every method built on a conv
autoencoder (the LatentGAN-AE, beta-VAE, WAE, latent-statistics VAE): the
tables differ only in widths, depths and strides, which live in `configs/`.
Initialisation is Flax's default on purpose: the paper reports that DCGAN's
initialisation hurts. Images are NHWC in [-1, 1].
"""

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from lgae.core.config_validation import positive_ints
from lgae.nets.fast_conv import tap_shift_sum, upsample2_tap_sum, upsample_bilinear


class StridedConv(nn.Module):
  """A k x k, stride-s conv with padding (k - s) / 2, computed as space-to-depth + stride-1 conv.

  Same parameters (`kernel` [k, k, in, out], `bias`), initialisation and
  function as `nn.Conv(out, (k, k), strides=s, padding=(k - s) // 2)`: the
  padded input is cut into s x s blocks stacked on channels and convolved with
  the kernel rearranged to [k/s, k/s, s*s*in, out], stride 1. The point is
  speed: XLA:CPU lowers the backward pass of a strided conv to slow generic
  dilated convolutions, while stride-1 convs (and their gradients) go to its
  fast kernels. Requires k divisible by s and even input sizes.
  """

  features: int
  kernel: int = 4
  stride: int = 2

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, s = self.kernel, self.stride
    n, h, w, c = x.shape
    kernel = self.param('kernel', nn.linear.default_kernel_init, (k, k, c, self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    pad = (k - s) // 2
    x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    hp, wp = h + 2 * pad, w + 2 * pad
    x = x.reshape(n, hp // s, s, wp // s, s, c).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(n, hp // s, wp // s, s * s * c)
    kernel = kernel.reshape(k // s, s, k // s, s, c, self.features).transpose(0, 2, 1, 3, 4, 5)
    kernel = kernel.reshape(k // s, k // s, s * s * c, self.features)
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), 'VALID',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return y + bias


class UpsampleConv(nn.Module):
  """Bilinear x`factor` upsampling followed by a k x k SAME conv, computed low-res first.

  Same parameters (`kernel` [k, k, in, out], optional `bias`), initialisation
  and function as `nn.Conv(out, (k, k), padding='SAME')(upsample_bilinear(x,
  factor))`, but evaluated as

      y = sum over taps t of shift_t(upsample(x @ kernel[t]))

  Bilinear upsampling acts on each channel alike and linearly, so it commutes
  with the conv's channel contraction: projecting onto the k*k*out tap outputs
  at the low resolution costs factor**2 fewer multiply-adds than convolving the
  upsampled map, and the large upsampled input (and the conv weight-gradient
  kernels over it, XLA:CPU's slowest ops in this model) never exist. The taps'
  shifts are zero-filled, which is exactly SAME padding of the upsampled map.
  For factor 2 and a 3x3 kernel (the paper's decoders) the upsampling and the
  tap sum run together at low resolution (`upsample2_tap_sum`); other
  factors and kernels upsample the taps, then shift and sum them. For factor
  1, or with `project_first=False`, it is the textbook upsampling followed by
  a native conv.
  """

  features: int
  factor: int
  kernel: int = 3
  use_bias: bool = True
  project_first: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, f = self.kernel, self.factor
    n, h, w, c = x.shape
    kernel = self.param('kernel', nn.linear.default_kernel_init, (k, k, c, self.features))
    if f == 1 or not self.project_first:
      y = jax.lax.conv_general_dilated(upsample_bilinear(x, f), kernel, (1, 1), 'SAME',
                                       dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    else:
      # [in, k*k*out]: one matmul gives every tap's contribution at low resolution.
      taps = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(c, k * k * self.features)
      projected = jnp.dot(x.reshape(n * h * w, c), taps).reshape(n, h, w, k, k, self.features)
      if f == 2 and k == 3:
        # Rows, then columns: [n, h, w, 3, 3, out] -> [n, 2h, w, 3, out] -> [n, 2h, 2w, out].
        y = upsample2_tap_sum(upsample2_tap_sum(projected, 1, 3), 2, 3)
      else:
        up = upsample_bilinear(projected.reshape(n, h, w, k * k * self.features), f)
        # SAME padding, as lax.conv does it for odd and even k: (k - 1) // 2 before.
        y = tap_shift_sum(up.reshape(n, h * f, w * f, k, k, self.features), k, (k - 1) // 2)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return y


class Encoder(nn.Module):
  """Strided 4x4 convs with relu (padding 1, so each halves H and W), then fc."""

  features: Sequence[int]
  latent_dim: int
  kernel: int = 4
  stride: int = 2

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, f in enumerate(self.features):
      x = StridedConv(f, self.kernel, self.stride, name=f'conv{i}')(x)
      x = nn.relu(x)
    x = x.reshape((x.shape[0], -1))
    return nn.Dense(self.latent_dim, name='fc')(x)


class Decoder(nn.Module):
  """relu(z) as a 1x1 map; [upsample, conv3x3, BatchNorm, relu]*; upsample, conv3x3, tanh."""

  upsample: Sequence[int]
  features: Sequence[int]
  out_channels: int
  kernel: int = 3
  batch_norm_momentum: float = 0.9
  project_first: bool = True   # See UpsampleConv and config.model.decoder_upsample_conv.

  @nn.compact
  def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
    x = nn.relu(z)[:, None, None, :]
    for i, (factor, f) in enumerate(zip(self.upsample, self.features)):
      # No conv bias before BatchNorm: BN's shift subsumes it, and a bias whose
      # true gradient is 0 would only random-walk on float noise under Adam.
      x = UpsampleConv(f, factor, self.kernel, use_bias=False, project_first=self.project_first,
                       name=f'conv{i}')(x)
      x = nn.BatchNorm(use_running_average=not train,
                       momentum=self.batch_norm_momentum, name=f'bn{i}')(x)
      x = nn.relu(x)
    x = UpsampleConv(self.out_channels, self.upsample[-1], self.kernel,
                     project_first=self.project_first, name='conv_out')(x)
    return jnp.tanh(x)


class Autoencoder(nn.Module):
  """Encoder and decoder in one module so they share one train state."""

  encoder: Encoder
  decoder: Decoder

  def __call__(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
    """Returns (z, reconstruction)."""
    z = self.encoder(x)
    return z, self.decoder(z, train=train)

  def encode(self, x: jax.Array) -> jax.Array:
    return self.encoder(x)

  def decode(self, z: jax.Array, *, train: bool = False) -> jax.Array:
    return self.decoder(z, train=train)


def resolve_decoder_upsample_conv(value: str, backend: str | None = None) -> str:
  """`config.model.decoder_upsample_conv` made concrete: 'auto' picks by backend.

  'project_first' is ~2x faster on CPU (experiments/docs/speed.md); on GPU/TPU native
  convs are the fast op, so 'auto' takes the textbook 'upsample_first' there.
  Both compute the same function with the same parameters, so the choice
  never affects a checkpoint.

  Args:
    value: 'auto', 'project_first' or 'upsample_first'.
    backend: a JAX backend name; default `jax.default_backend()`.
  """
  if value != 'auto':
    return value
  backend = backend or jax.default_backend()
  return 'project_first' if backend == 'cpu' else 'upsample_first'


def model_config(latent_dim: int) -> ml_collections.ConfigDict:
  """The conv encoder and decoder fields of `config.model`, at Kalwar et al.'s MNIST table (Table 2).

  Every method built on these stacks starts its `config.model` from this;
  dataset configs overwrite the widths with their own table.
  """
  model = ml_collections.ConfigDict()
  model.latent_dim = latent_dim
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
  return model


# Values of config.model.decoder_upsample_conv (see resolve_decoder_upsample_conv).
DECODER_UPSAMPLE_CONV = ('auto', 'project_first', 'upsample_first')




def build_encoder_decoder(config: ml_collections.ConfigDict, encoder_outputs: int | None = None
                          ) -> tuple[Encoder, Decoder]:
  """The conv encoder (`encoder_outputs` fc outputs, default latent_dim) and decoder, from config.model."""
  m = config.model
  encoder = Encoder(features=tuple(m.encoder_features), latent_dim=encoder_outputs or m.latent_dim,
                    kernel=m.encoder_kernel, stride=m.encoder_stride)
  project_first = resolve_decoder_upsample_conv(m.decoder_upsample_conv) == 'project_first'
  decoder = Decoder(upsample=tuple(m.decoder_upsample), features=tuple(m.decoder_features),
                    out_channels=config.dataset.channels, kernel=m.decoder_kernel,
                    batch_norm_momentum=m.batch_norm_momentum, project_first=project_first)
  return encoder, decoder


def validate_geometry(config: ml_collections.ConfigDict,
                     need: Callable[[bool, str], None]) -> None:
  """Checks of `lgae.nets.models`' conv encoder and decoder fields in `config.model`.

  Shared by every method built on them (this one, `beta_vae`, `wae`): the
  encoder must reduce the image exactly to 1x1 (the tables' last conv feeds
  fc-o<latent>) and the decoder must rebuild it.
  """
  m, d = config.model, config.dataset
  for name in ('latent_dim', 'encoder_kernel', 'encoder_stride', 'decoder_kernel'):
    need(m[name] > 0, f'config.model.{name}={m[name]} must be > 0.')
  for name in ('encoder_features', 'decoder_features', 'decoder_upsample'):
    need(positive_ints(m[name]) and len(m[name]) > 0,
         f'config.model.{name}={tuple(m[name])} must be a non-empty sequence of positive ints.')
  need(0.0 <= m.batch_norm_momentum < 1.0,
       f'config.model.batch_norm_momentum={m.batch_norm_momentum} must be in [0, 1).')
  if positive_ints(m.encoder_features) and m.encoder_stride > 0 and d.image_size > 0:
    side = m.encoder_stride ** len(m.encoder_features)
    need(d.image_size == side,
         f'config.dataset.image_size={d.image_size}: the encoder has '
         f'{len(m.encoder_features)} stride-{m.encoder_stride} convs and takes {side}x{side}'
         ' images; change image_size or model.encoder_features.')
    # models.StridedConv: padding (k - s) / 2 on both sides, and k / s taps per block.
    need(m.encoder_kernel >= m.encoder_stride and (m.encoder_kernel - m.encoder_stride) % 2 == 0
         and m.encoder_kernel % m.encoder_stride == 0,
         f'config.model.encoder_kernel={m.encoder_kernel} must be a multiple of encoder_stride='
         f'{m.encoder_stride} and differ from it by an even number (symmetric padding).')
  if positive_ints(m.decoder_upsample) and positive_ints(m.decoder_features):
    need(len(m.decoder_upsample) == len(m.decoder_features) + 1,
         f'config.model.decoder_upsample has {len(m.decoder_upsample)} factors; it needs one '
         f'per decoder_features entry ({len(m.decoder_features)}) plus one for the output conv.')
    need(math.prod(m.decoder_upsample) == d.image_size,
         f'config.model.decoder_upsample={tuple(m.decoder_upsample)} multiplies to '
         f'{math.prod(m.decoder_upsample)}, but the decoder must output '
         f'dataset.image_size={d.image_size}.')
  need(m.decoder_kernel % 2 == 1,
       f'config.model.decoder_kernel={m.decoder_kernel} must be odd (SAME padding, as p1 for 3x3).')
  need(m.decoder_upsample_conv in DECODER_UPSAMPLE_CONV,
       f'config.model.decoder_upsample_conv={m.decoder_upsample_conv!r} must be one of '
       f'{DECODER_UPSAMPLE_CONV}.')
