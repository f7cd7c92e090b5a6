"""The paper's qualitative figures, built from a train state.

  * `samples_by_category` (Fig. 2, 5, 7, 8): a row per value of a Cat code, a
    column per noise draw; everything but that category is shared by a column.
  * `continuous_traversals` (Figs. 3, 4, 6): per U code, a row per (category,
    noise) draw and a column per code value swept over [-1.5, 1.5].
  * `reconstructions`: eval images and Dec(Enc(x)) in alternating rows.
  * `representation_traversal` (the beta-VAE literature's latent traversal):
    one eval image's representation z, a row per dimension of z swept across
    the range the eval images span, decoded; for methods that decode their
    scored representation (`Method.decode_representation`).

The builders return uint8 grids (`plots.image_grid`) and are deterministic in
their key; `write_figures` annotates them like the paper's figures and writes
PNGs. Codes come from `lgae.core.latent`; decoding is `evaluation.decode_codes`.
"""

import os

import jax
import ml_collections
import numpy as np

from lgae.core import latent
from lgae.core import method as method_lib
from lgae.data import input_pipeline
from lgae.evaluation import plots, run as evaluation

# The paper sweeps U codes over [-1.5, 1.5], beyond their training range.
SWEEP_RANGE = (-1.5, 1.5)
# Rows of eval images (each followed by their reconstructions) in write_figures.
NUM_RECONSTRUCTION_ROWS = 5
# A representation dimension is swept between these percentiles of its values
# on the figure's eval images: the range the data use, on any method's scale
# (a VAE's z ~ N(0, 1), an autoencoder's unconstrained latent).
REPRESENTATION_PERCENTILES = (2.0, 98.0)
# Rows (dimensions, the widest-spread first) of the representation traversal.
MAX_TRAVERSED_DIMENSIONS = 16

State = method_lib.State


def _decode(state: State, codes: latent.Codes,
            layout: latent.CodeLayout) -> np.ndarray:
  return np.asarray(jax.device_get(evaluation.decode_codes(state, codes, layout)))


def code_name(code_index: int) -> str:
  """File/label name of continuous code `code_index`: 'u1', 'u2', ... (the paper's U_1, U_2)."""
  return f'u{code_index + 1}'


def samples_by_category(state: State, config: ml_collections.ConfigDict,
                        key: jax.Array, num_columns: int = 10,
                        code_index: int = 0) -> np.ndarray:
  """A uint8 grid: row k has Cat code `code_index` = k, column j noise draw j.

  Raises:
    ValueError: the config has no Cat code `code_index`.
  """
  layout = latent.CodeLayout.from_config(config)
  if not 0 <= code_index < len(layout.categorical):
    raise ValueError(f'No categorical code {code_index}; the config has '
                     f'{len(layout.categorical)} ({layout.categorical}).')
  codes = latent.category_grid(key, layout, code_index, num_columns)
  return plots.image_grid(_decode(state, codes, layout), layout.categorical[code_index],
                          num_columns)


def continuous_traversal_codes(config: ml_collections.ConfigDict, key: jax.Array,
                               code_index: int, num_values: int = 10,
                               num_rows: int = 10) -> latent.Codes:
  """The codes of `continuous_traversals`' grid for U code `code_index`, row-major."""
  layout = latent.CodeLayout.from_config(config)
  values = latent.traversal_values(num_values, *SWEEP_RANGE)
  return latent.continuous_traversal(key, layout, code_index, values, num_rows)


def continuous_traversals(state: State, config: ml_collections.ConfigDict,
                          key: jax.Array, num_values: int = 10,
                          num_rows: int = 10) -> dict[str, np.ndarray]:
  """One uint8 grid per U code: `{'u1': grid, 'u2': grid, ...}` (empty without U codes).

  In every grid, row r fixes the noise, the other codes and category r mod K
  of the first Cat code; column j sets the swept code to
  `latent.traversal_values(num_values, -1.5, 1.5)[j]`. All grids share `key`,
  so row r starts from the same draw in each of them.
  """
  layout = latent.CodeLayout.from_config(config)
  grids = {}
  for i in range(layout.num_continuous):
    codes = continuous_traversal_codes(config, key, i, num_values, num_rows)
    grids[code_name(i)] = plots.image_grid(_decode(state, codes, layout), num_rows, num_values)
  return grids


def reconstructions(state: State, config: ml_collections.ConfigDict,
                    images: np.ndarray, num_columns: int = 10) -> np.ndarray:
  """A uint8 grid alternating rows of `images` and rows of their reconstructions.

  Args:
    state: the train state.
    config: the run's config (unused beyond the images' layout; kept for a
      uniform signature).
    images: [N, H, W, C] in [-1, 1]; N must be a multiple of num_columns.
    num_columns: images per row.

  Returns:
    A grid of 2 * N / num_columns rows: originals in rows 0, 2, ...,
    reconstructions in rows 1, 3, ...
  """
  del config
  images = np.asarray(images, np.float32)
  if images.shape[0] % num_columns:
    raise ValueError(f'{images.shape[0]} images do not fill rows of {num_columns}.')
  recon = np.asarray(jax.device_get(evaluation.reconstruct(state, images)))
  rows = images.shape[0] // num_columns
  shape = (rows, 1, num_columns) + images.shape[1:]
  interleaved = np.concatenate([images.reshape(shape), recon.reshape(shape)], axis=1)
  return plots.image_grid(interleaved.reshape((-1,) + images.shape[1:]), 2 * rows, num_columns)


def representation_sweep(z: np.ndarray, base_index: int = 0, num_values: int = 10,
                         max_rows: int = MAX_TRAVERSED_DIMENSIONS
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The representations of `representation_traversal`'s grid (pure numpy).

  Args:
    z: [N, D] representations of N images.
    base_index: the image whose representation every row starts from.
    num_values: values per swept dimension (columns).
    max_rows: at most this many dimensions are swept.

  Returns:
    (points [rows * num_values, D], dims [rows], values [rows, num_values]):
    row r is z[base_index] with dimension dims[r] set to values[r, j] in
    column j, evenly spaced between that dimension's REPRESENTATION_PERCENTILES
    over z; dims are ordered by their spread (percentile range), widest first.
  """
  z = np.asarray(z, np.float64)
  low, high = np.percentile(z, REPRESENTATION_PERCENTILES, axis=0)
  dims = np.argsort(-(high - low), kind='stable')[:max_rows]
  values = np.linspace(low[dims], high[dims], num_values, axis=1)
  points = np.repeat(z[base_index][None, None, :], num_values, axis=1)
  points = np.repeat(points, len(dims), axis=0)
  points[np.arange(len(dims)), :, dims] = values
  return points.reshape(-1, z.shape[1]).astype(np.float32), dims, values


def representation_traversal(state: State, images: np.ndarray,
                             num_values: int = 10,
                             max_rows: int = MAX_TRAVERSED_DIMENSIONS
                             ) -> tuple[np.ndarray, np.ndarray] | None:
  """A uint8 grid of decoded `representation_sweep` rows from images[0], and the dims.

  The sweep's range comes from the representations of all `images`. None for
  methods that cannot decode their representation.
  """
  method = method_lib.for_state(state)
  if not method.decodes_representation:
    return None
  images = np.asarray(images, np.float32)
  z = np.asarray(jax.device_get(method.eval_outputs(state, images)['z']))
  points, dims, _ = representation_sweep(z, 0, num_values, max_rows)
  decoded = method.decode_representation(state, points)
  return (plots.image_grid(np.asarray(jax.device_get(decoded)), len(dims), num_values), dims)


def eval_images(config: ml_collections.ConfigDict, num: int) -> np.ndarray:
  """The first (up to) `num` images of the eval split, in stored order."""
  parts, have = [], 0
  for batch in input_pipeline.eval_iterator(config):
    images = batch['image'][batch['mask'] > 0]
    parts.append(images[:num - have])
    have += len(parts[-1])
    if have >= num:
      break
  return np.concatenate(parts)


def write_figures(state: State, config: ml_collections.ConfigDict,
                  out_dir: str, key: jax.Array, *, images: np.ndarray | None = None,
                  num_columns: int = 10) -> list[str]:
  """Writes the paper-style figures of `state` as annotated PNGs into `out_dir`.

  Files: `samples_by_category.png` (first Cat code) and
  `samples_by_category_<i>.png` for Cat codes i = 2, 3, ...;
  `traverse_u<i>.png` per continuous code; `reconstructions.png` (methods with a decoder);
  `traverse_z.png` (methods that decode their representation: the sweep's
  range is read off `images`).

  Args:
    state: the train state.
    config: its config.
    out_dir: created if missing.
    key: every figure draws from its own `fold_in` of this key.
    images: images to reconstruct; default the first NUM_RECONSTRUCTION_ROWS
      rows of the eval split.
    num_columns: noise draws / sweep values / images per row.

  Returns:
    The paths written, in the order above.

  Raises:
    input_pipeline.DataNotFoundError: `images` is None and the dataset is
      not prepared.
  """
  layout = latent.CodeLayout.from_config(config)
  if images is None:
    # Read before creating out_dir, so a missing dataset leaves nothing behind.
    images = eval_images(config, NUM_RECONSTRUCTION_ROWS * num_columns)
  os.makedirs(out_dir, exist_ok=True)
  paths = []

  for i, k in enumerate(layout.categorical):
    grid = samples_by_category(state, config, jax.random.fold_in(key, i), num_columns, i)
    name = 'samples_by_category.png' if i == 0 else f'samples_by_category_{i + 1}.png'
    path = os.path.join(out_dir, name)
    plots.labelled_grid_figure(
        grid, path, row_labels=[f'c{i + 1}={v}' for v in range(k)],
        title=f'Cat code {i + 1} (K={k}) per row; noise draws per column')
    paths.append(path)

  traversal_key = jax.random.fold_in(key, 1000)
  values = latent.traversal_values(num_columns, *SWEEP_RANGE)
  first_k = layout.categorical[0] if layout.categorical else None
  row_labels = ([f'c1={r % first_k}' for r in range(num_columns)] if first_k
                else [f'draw {r + 1}' for r in range(num_columns)])
  grids = continuous_traversals(state, config, traversal_key, num_columns, num_columns)
  for name, grid in grids.items():
    path = os.path.join(out_dir, f'traverse_{name}.png')
    plots.labelled_grid_figure(
        grid, path, row_labels=row_labels, col_labels=[f'{v:.2f}' for v in values],
        title=f'{name.upper()} swept over [{SWEEP_RANGE[0]}, {SWEEP_RANGE[1]}]; '
        'other codes fixed per row')
    paths.append(path)

  if not evaluation.has_decoder(state):   # e.g. InfoGAN: nothing to reconstruct with.
    return paths
  columns = min(num_columns, len(images))
  images = images[:len(images) // columns * columns]
  grid = reconstructions(state, config, images, columns)
  path = os.path.join(out_dir, 'reconstructions.png')
  plots.labelled_grid_figure(
      grid, path, row_labels=['input', 'recon'] * (len(images) // columns),
      title='Eval images and their reconstructions Dec(Enc(x))')
  paths.append(path)

  traversed = representation_traversal(state, images, num_columns)
  if traversed is not None:
    grid, dims = traversed
    path = os.path.join(out_dir, 'traverse_z.png')
    plots.labelled_grid_figure(
        grid, path, row_labels=[f'z{d + 1}' for d in dims],
        title=f'Representation z of the first image; per row one dimension swept between '
        f'percentiles {REPRESENTATION_PERCENTILES[0]:g} and {REPRESENTATION_PERCENTILES[1]:g} '
        f'of its values on {len(images)} eval images')
    paths.append(path)
  return paths
