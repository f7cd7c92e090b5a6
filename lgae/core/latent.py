"""G's input: Gaussian noise plus InfoGAN codes (Cat(K) and U(-1, 1)).

A `CodeLayout` says how many of each there are; `sample` draws a batch of
`Codes`; `generator_input` packs them in the fixed order
[noise, one-hot Cat_1, ..., one-hot Cat_n, U_1, ..., U_m] that G's first layer
sees. Traversal helpers build the paper's Fig. 2-4 code grids.
"""

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np


@dataclasses.dataclass(frozen=True)
class CodeLayout:
  """How G's input is made up.

  Attributes:
    noise_dim: width of the noise block.
    noise: its prior: 'normal' (N(0, I), the LatentGAN-AE paper's p) or
      'uniform' (U(-1, 1), InfoGAN's reference code).
    categorical: K of each Cat(K) code.
    num_continuous: number of U(-1, 1) codes.
  """

  noise_dim: int
  categorical: tuple[int, ...]
  num_continuous: int
  noise: str = 'normal'

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'CodeLayout':
    c = config.codes
    # .get: configs saved before `codes.noise` existed drew N(0, I).
    return cls(noise_dim=int(c.noise_dim), categorical=tuple(int(k) for k in c.categorical),
               num_continuous=int(c.num_continuous), noise=str(c.get('noise', 'normal')))

  @property
  def input_dim(self) -> int:
    """Width of G's input: noise + sum of K + number of continuous codes."""
    return self.noise_dim + sum(self.categorical) + self.num_continuous


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Codes:
  """One batch of G inputs, unpacked.

  Attributes:
    noise: [N, noise_dim] float.
    categorical: [N, num_categorical] int32 category indices.
    continuous: [N, num_continuous] float in [-1, 1] (wider in traversals).
  """

  noise: jax.Array
  categorical: jax.Array
  continuous: jax.Array


def sample(key: jax.Array, layout: CodeLayout, batch_size: int) -> Codes:
  """Draws the noise from its prior, each Cat code uniformly, each U code ~ U(-1, 1)."""
  k_noise, k_cat, k_cont = jax.random.split(key, 3)
  if layout.noise == 'uniform':
    noise = jax.random.uniform(k_noise, (batch_size, layout.noise_dim), minval=-1.0, maxval=1.0)
  else:
    noise = jax.random.normal(k_noise, (batch_size, layout.noise_dim))
  cat_keys = jax.random.split(k_cat, max(len(layout.categorical), 1))
  categorical = jnp.stack(
      [jax.random.randint(k, (batch_size,), 0, n) for k, n in zip(cat_keys, layout.categorical)],
      axis=1) if layout.categorical else jnp.zeros((batch_size, 0), jnp.int32)
  continuous = jax.random.uniform(k_cont, (batch_size, layout.num_continuous),
                                  minval=-1.0, maxval=1.0)
  return Codes(noise=noise, categorical=categorical.astype(jnp.int32), continuous=continuous)


def generator_input(codes: Codes, layout: CodeLayout) -> jax.Array:
  """Packs codes into G's input [noise, one-hot Cat_1..Cat_n, U_1..U_m]."""
  one_hots = [jax.nn.one_hot(codes.categorical[:, i], k, dtype=codes.noise.dtype)
              for i, k in enumerate(layout.categorical)]
  return jnp.concatenate([codes.noise, *one_hots, codes.continuous], axis=1)


def category_grid(key: jax.Array, layout: CodeLayout, code_index: int,
                  num_columns: int) -> Codes:
  """Codes for Fig. 2: a row per value of Cat code `code_index`, a column per noise draw.

  Noise, the other Cat codes and the U codes are drawn once per column and
  shared by every row, so a row differs from the next only in that category.

  Returns:
    Codes of batch K * num_columns, row-major (row = category value).
  """
  k = layout.categorical[code_index]
  column_codes = sample(key, layout, num_columns)
  tile = lambda a: jnp.tile(a, (k,) + (1,) * (a.ndim - 1))
  codes = jax.tree.map(tile, column_codes)
  values = jnp.repeat(jnp.arange(k, dtype=jnp.int32), num_columns)
  return dataclasses.replace(codes, categorical=codes.categorical.at[:, code_index].set(values))


def continuous_traversal(key: jax.Array, layout: CodeLayout, code_index: int,
                         values: Sequence[float], num_rows: int) -> Codes:
  """Codes for Figs. 3-4: a row per (category, noise) draw, a column per value of U code `code_index`.

  Each row fixes noise, Cat codes (row r takes category r mod K of the first
  Cat code, so rows cover the categories as in the paper) and the other U
  codes; only U_{code_index} sweeps `values` along the row.

  Returns:
    Codes of batch num_rows * len(values), row-major.
  """
  row_codes = sample(key, layout, num_rows)
  if layout.categorical:
    first = jnp.arange(num_rows, dtype=jnp.int32) % layout.categorical[0]
    row_codes = dataclasses.replace(row_codes,
                                    categorical=row_codes.categorical.at[:, 0].set(first))
  n = len(values)
  codes = jax.tree.map(lambda a: jnp.repeat(a, n, axis=0), row_codes)
  sweep = jnp.tile(jnp.asarray(values, jnp.float32), num_rows)
  return dataclasses.replace(codes, continuous=codes.continuous.at[:, code_index].set(sweep))


def traversal_values(num: int, low: float = -1.5, high: float = 1.5) -> np.ndarray:
  """Evenly spaced code values; the paper sweeps U over [-1.5, 1.5]."""
  return np.linspace(low, high, num, dtype=np.float32)
