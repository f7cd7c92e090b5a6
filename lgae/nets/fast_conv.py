"""CPU-friendly kernels for the conv stacks: bilinear 2x upsampling and tap sums with custom VJPs.

The decoder's upsample -> conv pairs and the encoder's strided convs
(`lgae.nets.conv`) spend most of a CPU step here. Each function computes
exactly what its textbook counterpart does (`jax.image.resize` bilinear, a
stride-s conv) but as neighbour shifts and weighted sums that XLA:CPU fuses
into the surrounding ops, forward and backward; `custom_vjp`s keep the
backward passes as cheap. See `experiments/docs/speed.md`.
"""

import functools

import jax
import jax.numpy as jnp


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
def tap_shift_sum(taps: jax.Array, k: int, lo: int) -> jax.Array:
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
  return tap_shift_sum(taps, k, lo), None


def _tap_shift_sum_bwd(k, lo, _, g):
  rows = [jnp.stack([_shift(g, lo - dy, lo - dx) for dx in range(k)], axis=3)
          for dy in range(k)]
  return (jnp.stack(rows, axis=3),)


tap_shift_sum.defvjp(_tap_shift_sum_fwd, _tap_shift_sum_bwd)


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
def upsample2_tap_sum(taps: jax.Array, axis: int, tap_axis: int) -> jax.Array:
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
  return upsample2_tap_sum(taps, axis, tap_axis), None


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


upsample2_tap_sum.defvjp(_upsample2_tap_sum_fwd, _upsample2_tap_sum_bwd)


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
