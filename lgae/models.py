"""The four networks of the LatentGAN Autoencoder, built from a config.

One set of classes serves every dataset: the paper's Tables 2-4 differ only in
widths, depths and code layouts, which live in `configs/*.py`. Initialisation is
Flax's default on purpose: the paper reports that DCGAN's initialisation hurts.
Images are NHWC in [-1, 1].
"""

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections


def _interleave(even: jax.Array, odd: jax.Array, axis: int) -> jax.Array:
  """out[2i] = even[i], out[2i + 1] = odd[i] along `axis`."""
  out = jnp.stack([even, odd], axis=axis + 1)
  return out.reshape(even.shape[:axis] + (2 * even.shape[axis],) + even.shape[axis + 1:])


def _deinterleave(x: jax.Array, axis: int) -> tuple[jax.Array, jax.Array]:
  """(x[0::2], x[1::2]) along `axis`: the inverse of `_interleave`."""
  x = x.reshape(x.shape[:axis] + (x.shape[axis] // 2, 2) + x.shape[axis + 1:])
  return tuple(jax.lax.index_in_dim(x, i, axis + 1, keepdims=False) for i in range(2))


def _shifted_pair(first: jax.Array, second: jax.Array, axis: int) -> tuple[jax.Array, jax.Array]:
  """(concat(first[:1], second[:-1]), concat(first[1:], second[-1:])) along `axis`."""
  n = first.shape[axis]
  take = lambda x, start, stop: jax.lax.slice_in_dim(x, start, stop, axis=axis)
  return (jnp.concatenate([take(first, 0, 1), take(second, 0, n - 1)], axis=axis),
          jnp.concatenate([take(first, 1, n), take(second, n - 1, n)], axis=axis))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _upsample2_axis(x: jax.Array, axis: int) -> jax.Array:
  """Doubles one spatial axis with bilinear weights (0.25, 0.75), edges clamped.

  out[2i] = 0.25 x[i - 1] + 0.75 x[i], out[2i + 1] = 0.75 x[i] + 0.25 x[i + 1],
  with x[-1] = x[0] and x[n] = x[n - 1]. The gradient is written out (the same
  kind of shifted sum) because autodiff's transpose of the interleave and the
  edge-clamping concatenations becomes several padded full-size arrays on
  XLA:CPU, 3-4x slower than the forward.
  """
  prev, nxt = _shifted_pair(x, x, axis)   # x[i - 1] and x[i + 1], clamped.
  return _interleave(0.25 * prev + 0.75 * x, 0.75 * x + 0.25 * nxt, axis)


def _upsample2_axis_fwd(x, axis):
  return _upsample2_axis(x, axis), None


def _upsample2_axis_bwd(axis, _, g):
  # d/dx[j] = 0.75 (g[2j] + g[2j+1]) + 0.25 (g[2j+2] + g[2j-1]), where the
  # clamped edges send g[0] and g[2n-1] back to x[0] and x[n-1] once more.
  even, odd = _deinterleave(g, axis)
  from_odd_before, from_even_after = _shifted_pair(even, odd, axis)
  return (0.75 * (even + odd) + 0.25 * (from_odd_before + from_even_after),)


_upsample2_axis.defvjp(_upsample2_axis_fwd, _upsample2_axis_bwd)


def _shift(x: jax.Array, dy: int, dx: int) -> jax.Array:
  """out[:, i, j] = x[:, i + dy, j + dx], zero where that falls outside x."""
  return jax.lax.pad(x, jnp.zeros((), x.dtype),
                     ((0, 0, 0), (-dy, dy, 0), (-dx, dx, 0), (0, 0, 0)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _tap_shift_sum(taps: jax.Array, k: int, lo: int) -> jax.Array:
  """sum over (dy, dx) of taps[:, i + dy - lo, j + dx - lo, dy, dx, :], zero-filled.

  The last step of a SAME conv whose taps were computed separately: taps is
  [N, H, W, k, k, C] and the result [N, H, W, C]. Written with its own
  gradient, one stack of shifted cotangents, because autodiff would transpose
  each of the k*k tap selections into a full-size zero-padded array and add
  them up, which XLA:CPU materialises.
  """
  return sum(_shift(taps[:, :, :, dy, dx, :], dy - lo, dx - lo)
             for dy in range(k) for dx in range(k))


def _tap_shift_sum_fwd(taps, k, lo):
  return _tap_shift_sum(taps, k, lo), None


def _tap_shift_sum_bwd(k, lo, _, g):
  rows = [jnp.stack([_shift(g, lo - dy, lo - dx) for dx in range(k)], axis=3)
          for dy in range(k)]
  return (jnp.stack(rows, axis=3),)


_tap_shift_sum.defvjp(_tap_shift_sum_fwd, _tap_shift_sum_bwd)


def _shift_in(x: jax.Array, by: int, axis: int) -> jax.Array:
  """out[i] = x[i - by] along `axis`, zero where that falls outside."""
  config = [(0, 0, 0)] * x.ndim
  config[axis] = (by, -by, 0)
  return jax.lax.pad(x, jnp.zeros((), x.dtype), config)


def _prev(x: jax.Array, axis: int) -> jax.Array:
  """x[i - 1] along `axis`, zero at i = 0."""
  return _shift_in(x, 1, axis)


def _next(x: jax.Array, axis: int) -> jax.Array:
  """x[i + 1] along `axis`, zero at i = n - 1."""
  return _shift_in(x, -1, axis)


def _only_at(x: jax.Array, index: int, axis: int) -> jax.Array:
  """x at `index` along `axis`, zero elsewhere."""
  size = x.shape[axis]
  index %= size
  config = [(0, 0, 0)] * x.ndim
  config[axis] = (index, size - 1 - index, 0)
  return jax.lax.pad(jax.lax.index_in_dim(x, index, axis), jnp.zeros((), x.dtype), config)


def _zero_at(x: jax.Array, index: int, axis: int) -> jax.Array:
  """x with the slice at `index` along `axis` set to zero."""
  return x - _only_at(x, index, axis)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _upsample2_tap_sum(taps: jax.Array, axis: int, tap_axis: int) -> jax.Array:
  """sum over d in {0, 1, 2} of shift_{d - 1}(upsample2(taps[d])) along `axis`, at low resolution.

  `taps` holds the three taps of a size-3 SAME conv along `axis` in its axis
  `tap_axis` (> `axis`; removed in the output). `axis` doubles with the
  bilinear weights of `_upsample2_axis`; the shifts are zero-filled. Applied
  to the rows and then the columns, it is the tail of a factor-2
  `UpsampleConv` with a 3x3 kernel. Each output phase is a short weighted sum
  of neighbouring low-res taps (out[2i] and out[2i + 1] both read taps at
  i - 1 .. i + 1), and that is what is computed: no upsampled copy of the
  taps in the forward pass, and a backward pass that writes 3 low-res arrays
  per axis instead of the general path's 9 upsampled shifted cotangents
  (memory-bound: with it the MNIST step took ~1.24x as long on a Zen 3).
  """
  p0, p1, p2 = (jax.lax.index_in_dim(taps, d, tap_axis, keepdims=False) for d in range(3))
  # Neighbours clamped at the edges, as the bilinear upsampling reads them.
  p0_prev, _ = _shifted_pair(p0, p0, axis)
  p1_prev, p1_next = _shifted_pair(p1, p1, axis)
  _, p2_next = _shifted_pair(p2, p2, axis)
  # Zero-filled reads: the shifts' SAME padding.
  even = (0.75 * _prev(p0, axis) + 0.25 * _zero_at(p0, 0, axis)
          + 0.25 * p1_prev + 0.75 * p1 + 0.75 * p2 + 0.25 * p2_next)
  odd = (0.25 * p0_prev + 0.75 * p0 + 0.75 * p1 + 0.25 * p1_next
         + 0.25 * _zero_at(p2, -1, axis) + 0.75 * _next(p2, axis))
  return _interleave(even, odd, axis)


def _upsample2_tap_sum_fwd(taps, axis, tap_axis):
  return _upsample2_tap_sum(taps, axis, tap_axis), None


def _upsample2_tap_sum_bwd(axis, tap_axis, _, g):
  # The transpose of each term above: previous <-> next, and a clamped
  # neighbour sends the edge value back to the edge once more.
  ge, go = _deinterleave(g, axis)
  prev_clamped_t = lambda x: _next(x, axis) + _only_at(x, 0, axis)
  next_clamped_t = lambda x: _prev(x, axis) + _only_at(x, -1, axis)
  d0 = (0.75 * _next(ge, axis) + 0.25 * _zero_at(ge, 0, axis)
        + 0.25 * prev_clamped_t(go) + 0.75 * go)
  d1 = 0.25 * prev_clamped_t(ge) + 0.75 * ge + 0.75 * go + 0.25 * next_clamped_t(go)
  d2 = (0.75 * ge + 0.25 * next_clamped_t(ge) + 0.25 * _zero_at(go, -1, axis)
        + 0.75 * _prev(go, axis))
  return (jnp.stack([d0, d1, d2], axis=tap_axis),)


_upsample2_tap_sum.defvjp(_upsample2_tap_sum_fwd, _upsample2_tap_sum_bwd)


def upsample_bilinear(x: jax.Array, factor: int) -> jax.Array:
  """Bilinear upsampling of NHWC images by an integer factor.

  Same convention as PyTorch's `interpolate(mode='bilinear',
  align_corners=False)` and `jax.image.resize(..., 'bilinear')`: half-pixel
  centres, edges clamped.

  Args:
    x: [N, H, W, C] images.
    factor: the integer scale factor (1 is the identity).

  Returns:
    [N, H * factor, W * factor, C] images.
  """
  n, h, w, c = x.shape
  if factor == 1:
    return x
  if h == 1 and w == 1:
    # A 1x1 map (the decoder's first block) upsamples to a constant map; a
    # broadcast is exact and far cheaper than a resize kernel.
    return jnp.broadcast_to(x, (n, factor, factor, c))
  if factor == 2:
    # The decoder's hot path: neighbour shifts and a weighted sum, which XLA
    # fuses into the surrounding ops (forward and backward), instead of
    # resize's dense interpolation matrices and transposes.
    return _upsample2_axis(_upsample2_axis(x, 1), 2)
  return jax.image.resize(x, (n, h * factor, w * factor, c), method='bilinear')


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
  tap sum run together at low resolution (`_upsample2_tap_sum`); other
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
        y = _upsample2_tap_sum(_upsample2_tap_sum(projected, 1, 3), 2, 3)
      else:
        up = upsample_bilinear(projected.reshape(n, h, w, k * k * self.features), f)
        # SAME padding, as lax.conv does it for odd and even k: (k - 1) // 2 before.
        y = _tap_shift_sum(up.reshape(n, h * f, w * f, k, k, self.features), k, (k - 1) // 2)
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


class MLP(nn.Module):
  """Dense+relu hidden layers, then an optional linear output layer."""

  hidden: Sequence[int]
  out_dim: int | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, h in enumerate(self.hidden):
      x = nn.relu(nn.Dense(h, name=f'fc{i}')(x))
    if self.out_dim is not None:
      x = nn.Dense(self.out_dim, name='fc_out')(x)
    return x


class Generator(nn.Module):
  """G: [noise, one-hot Cat codes, U codes] -> a fake latent (linear output)."""

  hidden: Sequence[int]
  latent_dim: int

  @nn.compact
  def __call__(self, g_input: jax.Array) -> jax.Array:
    return MLP(self.hidden, self.latent_dim, name='mlp')(g_input)


class DiscriminatorQ(nn.Module):
  """D and Q: one relu trunk, a real/fake logit head and Q's code heads.

  Q's heads sit on D's trunk (the paper's "Q shares parameters with D"), so the
  mutual-information loss trains the trunk too.
  """

  hidden: Sequence[int]
  categorical: Sequence[int]
  num_continuous: int

  @nn.compact
  def __call__(self, z: jax.Array) -> dict[str, jax.Array]:
    """Returns {'logit': [N], 'cont_mean': [N, n_cont], 'cat_logits': tuple of [N, K]}."""
    h = MLP(self.hidden, name='trunk')(z)
    out = {'logit': nn.Dense(1, name='d_head')(h)[:, 0]}
    out['cont_mean'] = (nn.Dense(self.num_continuous, name='q_cont')(h)
                        if self.num_continuous else jnp.zeros((z.shape[0], 0), z.dtype))
    out['cat_logits'] = tuple(nn.Dense(k, name=f'q_cat{i}')(h)
                              for i, k in enumerate(self.categorical))
    return out


def resolve_decoder_upsample_conv(value: str, backend: str | None = None) -> str:
  """`config.model.decoder_upsample_conv` made concrete: 'auto' picks by backend.

  'project_first' is ~2x faster on CPU (README "Speed"); on GPU/TPU native
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


def build_models(config: ml_collections.ConfigDict) -> tuple[Autoencoder, Generator, DiscriminatorQ]:
  """Builds (autoencoder, generator, discriminator/Q) from a config."""
  m = config.model
  encoder = Encoder(features=tuple(m.encoder_features), latent_dim=m.latent_dim,
                    kernel=m.encoder_kernel, stride=m.encoder_stride)
  decoder = Decoder(upsample=tuple(m.decoder_upsample), features=tuple(m.decoder_features),
                    out_channels=config.dataset.channels, kernel=m.decoder_kernel,
                    batch_norm_momentum=m.batch_norm_momentum,
                    project_first=(resolve_decoder_upsample_conv(m.decoder_upsample_conv)
                                   == 'project_first'))
  autoencoder = Autoencoder(encoder=encoder, decoder=decoder)
  generator = Generator(hidden=tuple(m.generator_hidden), latent_dim=m.latent_dim)
  discriminator = DiscriminatorQ(hidden=tuple(m.discriminator_hidden),
                                 categorical=tuple(config.codes.categorical),
                                 num_continuous=config.codes.num_continuous)
  return autoencoder, generator, discriminator
