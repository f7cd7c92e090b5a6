"""Image grids and PNG output for samples, reconstructions and code traversals.

`image_grid` is pure numpy so it can be unit tested and reused for TensorBoard
image summaries. The writers use matplotlib's object-oriented API
(`matplotlib.image.imsave`, which `plt.imsave` wraps, and a `Figure` with an
Agg canvas) rather than `pyplot`: that needs no global backend switch, keeps
no figure registry that leaks memory over a long training run, and is safe to
call from a background thread while the trainer keeps running.
"""

import math
import os
from collections.abc import Sequence

import matplotlib.figure
import matplotlib.image
import numpy as np
from matplotlib.backends import backend_agg


def _to_uint8(values: np.ndarray) -> np.ndarray:
  """Maps [-1, 1] to [0, 255] uint8, clipping values outside the range."""
  values = np.asarray(values, dtype=np.float32)
  # A diverged generator can emit NaN/inf; render them as black/white rather
  # than let the uint8 cast produce undefined values or crash the eval loop.
  values = np.nan_to_num(values, nan=-1.0, posinf=1.0, neginf=-1.0)
  scaled = np.rint((values + 1.0) * 127.5)
  return np.clip(scaled, 0, 255).astype(np.uint8)


def image_grid(
    images: np.ndarray,
    rows: int,
    cols: int,
    padding: int = 1,
    pad_value: float = 1.0,
) -> np.ndarray:
  """Tiles a batch of images into one uint8 image, row-major.

  Image `i` goes to row `i // cols`, column `i % cols`, so a batch laid out as
  [category, noise draw] fills one row per category.

  Args:
    images: [N, H, W, C] float array in [-1, 1] (the model's output range).
    rows: number of grid rows.
    cols: number of grid columns; `rows * cols` must equal N.
    padding: pixels of `pad_value` between images and around the border.
    pad_value: value of the padding in the same [-1, 1] scale as the images,
      so the default 1.0 is white.

  Returns:
    [rows * H + (rows + 1) * padding, cols * W + (cols + 1) * padding, C]
    uint8 array; C is kept (1 stays grayscale).

  Raises:
    ValueError: if `images` is not 4-D, or N != rows * cols, or rows, cols or
      padding are out of range.
  """
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(
        f'images must be [N, H, W, C], got shape {images.shape}.')
  if rows < 1 or cols < 1:
    raise ValueError(f'rows and cols must be >= 1, got {rows} and {cols}.')
  if padding < 0:
    raise ValueError(f'padding must be >= 0, got {padding}.')
  num, height, width, channels = images.shape
  if num != rows * cols:
    raise ValueError(
        f'Got {num} images for a {rows}x{cols} grid; need {rows * cols}.')

  pixels = _to_uint8(images)
  fill = _to_uint8(np.array(pad_value))
  grid = np.full(
      (rows * height + (rows + 1) * padding,
       cols * width + (cols + 1) * padding,
       channels),
      fill, dtype=np.uint8)
  for index in range(num):
    row, col = divmod(index, cols)
    top = padding + row * (height + padding)
    left = padding + col * (width + padding)
    grid[top:top + height, left:left + width] = pixels[index]
  return grid


def _check_grid(grid: np.ndarray) -> np.ndarray:
  """Validates a uint8 [H, W, C] grid with C in {1, 3, 4}."""
  grid = np.asarray(grid)
  if grid.ndim != 3 or grid.shape[-1] not in (1, 3, 4):
    raise ValueError(
        f'grid must be [H, W, C] with C in (1, 3, 4), got shape {grid.shape}.')
  if grid.dtype != np.uint8:
    # Floats would be interpreted in [0, 1] by matplotlib, silently turning a
    # [-1, 1] image into a clipped mess; insist on `image_grid`'s output.
    raise ValueError(f'grid must be uint8, got {grid.dtype}.')
  if grid.shape[0] == 0 or grid.shape[1] == 0:
    raise ValueError(f'grid must not be empty, got shape {grid.shape}.')
  return grid


def _make_parent_dir(path: str | os.PathLike[str]) -> None:
  parent = os.path.dirname(os.fspath(path))
  if parent:
    os.makedirs(parent, exist_ok=True)


def save_png(path: str | os.PathLike[str], grid: np.ndarray) -> None:
  """Writes a uint8 [H, W, C] image to `path` as PNG at native resolution.

  Parent directories are created, so callers can write
  `<workdir>/samples/step_000100.png` without preparing the folder.

  Args:
    path: destination file; should end in `.png`.
    grid: uint8 [H, W, C] array with C in {1, 3, 4}, e.g. from `image_grid`.

  Raises:
    ValueError: if `grid` has the wrong rank, channel count or dtype.
  """
  grid = _check_grid(grid)
  _make_parent_dir(path)
  if grid.shape[-1] == 1:
    # matplotlib treats 2-D input as scalar data to colour-map; pin the range
    # so an all-dark image is not stretched to full contrast.
    matplotlib.image.imsave(
        path, grid[..., 0], cmap='gray', vmin=0, vmax=255, format='png')
  else:
    matplotlib.image.imsave(path, grid, format='png')


def labelled_grid_figure(
    grid: np.ndarray,
    path: str | os.PathLike[str],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    dpi: int = 100,
) -> None:
  """Saves `grid` as a figure with per-row/per-column annotations.

  Meant for the paper's Fig. 2-4 style plots: one row per category value and
  one column per noise draw or continuous-code value. Labels are centred on
  the cells of an equally divided grid, which matches `image_grid` output up
  to half the padding width.

  Args:
    grid: uint8 [H, W, C] image with C in {1, 3, 4}, e.g. from `image_grid`.
    path: destination PNG file; parent directories are created.
    row_labels: one label per grid row (drawn on the left), or None.
    col_labels: one label per grid column (drawn on top), or None.
    title: optional figure title.
    dpi: output resolution; ~100 keeps files small for the experiment logs.

  Raises:
    ValueError: if `grid` is invalid or a label list is empty.
  """
  grid = _check_grid(grid)
  for name, labels in (('row_labels', row_labels), ('col_labels', col_labels)):
    if labels is not None and len(labels) == 0:
      raise ValueError(f'{name} must be None or non-empty.')
  height, width = grid.shape[:2]

  # Upscale small grids (one row of 28x28 digits) by a whole factor so that
  # the annotations stay readable and every grid pixel becomes an equal
  # square block (no uneven padding lines from fractional resampling).
  scale = max(1, math.ceil(400 / max(height, width)))
  image_width = width * scale / dpi
  image_height = height * scale / dpi
  # Fixed margins in inches for the tick labels and the title; the axes get
  # exactly the image size so the upscaling above is what gets rendered.
  # `bbox_inches='tight'` then trims whatever margin is unused.
  left, right, bottom = 1.0, 0.1, 0.1
  top = 0.4 + (0.4 if title else 0.0)
  fig_width = left + image_width + right
  fig_height = bottom + image_height + top
  fig = matplotlib.figure.Figure(figsize=(fig_width, fig_height), dpi=dpi)
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_axes((left / fig_width, bottom / fig_height,
                     image_width / fig_width, image_height / fig_height))

  if grid.shape[-1] == 1:
    ax.imshow(grid[..., 0], cmap='gray', vmin=0, vmax=255,
              interpolation='nearest')
  else:
    ax.imshow(grid, interpolation='nearest')

  # imshow puts pixel centres at integer coordinates, so cell i of n spans
  # [i * size / n - 0.5, (i + 1) * size / n - 0.5].
  if row_labels is not None:
    count = len(row_labels)
    ax.set_yticks([(i + 0.5) * height / count - 0.5 for i in range(count)])
    ax.set_yticklabels([str(label) for label in row_labels], fontsize=8)
  else:
    ax.set_yticks([])
  if col_labels is not None:
    count = len(col_labels)
    ax.set_xticks([(i + 0.5) * width / count - 0.5 for i in range(count)])
    ax.set_xticklabels([str(label) for label in col_labels], fontsize=8)
    # Column labels on top leave the bottom free and read like table headers.
    ax.xaxis.tick_top()
  else:
    ax.set_xticks([])
  ax.tick_params(length=0)
  for spine in ax.spines.values():
    spine.set_visible(False)
  if title:
    # An axes title is centred on the image rather than on the whole figure
    # and is pushed above top tick labels automatically.
    ax.set_title(title, fontsize=10)

  _make_parent_dir(path)
  fig.savefig(path, dpi=dpi, bbox_inches='tight', format='png')
