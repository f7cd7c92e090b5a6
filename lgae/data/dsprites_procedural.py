"""dSprites (Matthey et al. 2017), rendered procedurally: no download.

The dSprites release (github.com/deepmind/dsprites-dataset) is every
combination of 5 factors, one 64x64 binary image each:

  shape        3   square, ellipse, heart          (values 1, 2, 3)
  scale        6   linspace(0.5, 1, 6)
  orientation 40   linspace(0, 2 pi, 40) radians   (0 and 2 pi both present)
  x position  32   linspace(0, 1, 32)
  y position  32   linspace(0, 1, 32)

= 737,280 images, stored in that nesting order, y fastest. This module renders
the same grid with numpy and writes it as the tfds dataset
`dsprites_procedural`, whose features, dtypes, class counts, keys and pixel
values are those of tfds' own `dsprites` builder (which downloads the release's
hdf5 from GitHub, impossible offline): a model or metric written for one reads
the other unchanged. Examples are generated in the release's order with their
index in it as the tfds key; tfds then stores them in its key-hash order, as it
does for `dsprites`, so slices such as 'train[98%:]' are fixed pseudo-random
subsets of the grid rather than, say, only hearts.

Geometry, in pixels of the 64x64 frame (x right, y down), measured on the
frames of the original release's README animation (dsprites.gif, which shows
320 images of the dataset itself): a sprite's centre is at
16 + 32 * position, so sprites move over the central half of the frame; at
scale 1 the square covers 20 x 20 pixels, the ellipse 26 x 14 with its long
axis horizontal, the heart 20 x 17 with its lobes up; orientation turns the
sprite counter-clockwise as displayed (y down), about its position.

Rasterisation: a pixel is 1 iff its centre lies inside the shape (one point
sample, no anti-aliasing), which reproduces the release's pixel counts: its
square at scale 1 has 400 pixels axis-aligned (20 x 20) but 364-372 when
rotated, i.e. it is 19.2 px wide (0.3 of the frame) and covers every pixel
whose centre it contains. One sample per pixel keeps the renderer a few numpy
ops per pixel. The shapes' sizes below were fitted to those 320 frames (README
"dSprites (procedural)" says how close the result is).

Pixel values are 0 and 1 (uint8), as in the release and in tfds' `dsprites`,
not 0 and 255.

Importing this module registers the builder as `dsprites_procedural`; its
default config is the full grid, `dsprites_procedural/small` a strided subset
for tests.
"""

import dataclasses
import inspect
import os
import tempfile
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

IMAGE_SIZE = 64
SHAPES = ('square', 'ellipse', 'heart')

# The factor grid of the release, in its nesting order (last fastest). Values
# are float64 as in the release's `latents_values`; the tfds features store
# them as float32, like tfds' `dsprites`.
SHAPE_VALUES = np.array([1.0, 2.0, 3.0])
SCALE_VALUES = np.linspace(0.5, 1.0, 6)
ORIENTATION_VALUES = np.linspace(0.0, 2 * np.pi, 40)
POSITION_VALUES = np.linspace(0.0, 1.0, 32)
FACTOR_NAMES = ('shape', 'scale', 'orientation', 'x_position', 'y_position')
FACTOR_VALUES = (SHAPE_VALUES, SCALE_VALUES, ORIENTATION_VALUES,
                 POSITION_VALUES, POSITION_VALUES)
FACTOR_SIZES = tuple(len(v) for v in FACTOR_VALUES)      # (3, 6, 40, 32, 32)
NUM_IMAGES = int(np.prod(FACTOR_SIZES))                  # 737,280

# Sprite centre = POSITION_OFFSET + POSITION_RANGE * position (pixels).
POSITION_OFFSET = 16.0
POSITION_RANGE = 32.0
# Sizes at scale 1, in pixels; sprites scale linearly about their centre.
SQUARE_SIDE = 19.2
ELLIPSE_AXES = (25.45, 14.45)    # full width, height at orientation 0.
# The heart is a square standing on a corner (half diagonal
# HEART_HALF_DIAGONAL) with two discs (HEART_LOBE_RADIUS) over its upper edges,
# centred HEART_LOBE_CENTRE = (+-x, y up) from the square's centre: the
# textbook heart (discs with the upper edges as diameters would be centred at
# (3.92, 3.92) with radius 5.54) with lobes further apart, as the release's
# deeper notch shows. The square's centre sits HEART_SHIFT below the rotation
# centre: the release turns the heart about a point near its bounding box
# centre, not its centroid.
HEART_HALF_DIAGONAL = 7.83
HEART_LOBE_CENTRE = (4.55, 4.64)
HEART_LOBE_RADIUS = 5.12
HEART_SHIFT = 0.58

# Each sprite is rendered in a window this wide around its centre and pasted:
# 4x fewer pixels to test than the whole frame. The window reaches >= 15 px
# from the centre; sprites reach <= 13.6 px (the square's half diagonal at
# scale 1), which a test checks against whole-frame rendering.
_WINDOW = 32


def factor_grid(strides: tuple[int, ...] = (1, 1, 1, 1, 1)) -> np.ndarray:
  """Class indices of the grid (or of a strided subset), in the release's order.

  Args:
    strides: keep every k-th value of each factor, in FACTOR_NAMES order.

  Returns:
    int64 [N, 5]: rows (shape, scale, orientation, x, y) class indices, nested
    in that order with y fastest; with unit strides row i is image i of the
    release.
  """
  if len(strides) != len(FACTOR_SIZES) or any(
      not isinstance(s, int) or s < 1 for s in strides):
    raise ValueError(
        f'strides must be {len(FACTOR_SIZES)} positive ints (one per factor '
        f'{FACTOR_NAMES}), got {strides!r}.')
  axes = [np.arange(0, n, s) for n, s in zip(FACTOR_SIZES, strides)]
  mesh = np.meshgrid(*axes, indexing='ij')
  return np.stack([m.reshape(-1) for m in mesh], axis=1).astype(np.int64)


def grid_index(classes: np.ndarray) -> np.ndarray:
  """Index in the release of class-index rows [..., 5]; inverts factor_grid."""
  return np.ravel_multi_index(tuple(np.moveaxis(np.asarray(classes), -1, 0)),
                              FACTOR_SIZES)


def factor_values(classes: np.ndarray) -> np.ndarray:
  """float64 [N, 5] factor values of class-index rows [N, 5]."""
  classes = np.asarray(classes)
  return np.stack([values[classes[:, i]]
                   for i, values in enumerate(FACTOR_VALUES)], axis=1)


def _inside(shape: int, qx: np.ndarray, qy: np.ndarray,
            scale: np.ndarray) -> np.ndarray:
  """Whether sprite-frame points (pixels, y down) are in the scaled shape."""
  # Scaling the points instead of the shape: one division, same test.
  qx, qy = qx / scale, qy / scale
  if shape == 0:
    return np.maximum(np.abs(qx), np.abs(qy)) <= SQUARE_SIDE / 2
  if shape == 1:
    return ((qx / (ELLIPSE_AXES[0] / 2)) ** 2 +
            (qy / (ELLIPSE_AXES[1] / 2)) ** 2 <= 1.0)
  if shape == 2:
    dy = qy - HEART_SHIFT                      # from the square's centre.
    diamond = np.abs(qx) + np.abs(dy) <= HEART_HALF_DIAGONAL
    lobes = ((np.abs(qx) - HEART_LOBE_CENTRE[0]) ** 2 +
             (dy + HEART_LOBE_CENTRE[1]) ** 2 <= HEART_LOBE_RADIUS ** 2)
    return diamond | lobes
  raise ValueError(f'shape must be 0 (square), 1 (ellipse) or 2 (heart), '
                   f'got {shape!r}.')


def render_batch(shapes, scales, orientations, xs, ys, *,
                 window: int = _WINDOW) -> np.ndarray:
  """Renders sprites: uint8 [N, 64, 64] of 0 (background) and 1 (sprite).

  Args:
    shapes: int [N] shape class, 0 square, 1 ellipse, 2 heart (label_shape).
    scales: float [N] in [0.5, 1] (value_scale).
    orientations: float [N] radians (value_orientation).
    xs: float [N] in [0, 1], 0 left (value_x_position).
    ys: float [N] in [0, 1], 0 top (value_y_position).
    window: side of the square each sprite is rendered in (64: the frame).

  Returns:
    The images; deterministic (no randomness), a pure function of the inputs.
  """
  shapes = np.asarray(shapes)
  scales, orientations, xs, ys = (
      np.asarray(v, dtype=np.float64).reshape(-1)
      for v in (scales, orientations, xs, ys))
  shapes = shapes.reshape(-1)
  n = shapes.shape[0]
  if not all(v.shape[0] == n for v in (scales, orientations, xs, ys)):
    raise ValueError('shapes, scales, orientations, xs and ys must have the '
                     'same length.')
  if not np.isin(shapes, (0, 1, 2)).all():
    raise ValueError('shapes must be 0 (square), 1 (ellipse) or 2 (heart), '
                     f'got {sorted(set(shapes.tolist()) - {0, 1, 2})}.')
  if n and (xs.min() < 0 or xs.max() > 1 or ys.min() < 0 or ys.max() > 1):
    raise ValueError('x and y positions must be in [0, 1] (the sprite centre '
                     'then stays in the central half of the frame).')
  if n and (scales.min() <= 0 or scales.max() > 1):
    raise ValueError('scales must be in (0, 1] (dSprites uses 0.5 to 1).')
  cx = POSITION_OFFSET + POSITION_RANGE * xs
  cy = POSITION_OFFSET + POSITION_RANGE * ys
  # Integer window origins around each centre, inside the frame.
  ox = np.clip(np.floor(cx).astype(np.int64) - window // 2, 0,
               IMAGE_SIZE - window)
  oy = np.clip(np.floor(cy).astype(np.int64) - window // 2, 0,
               IMAGE_SIZE - window)
  centres = np.arange(window) + 0.5        # pixel centres within a window.
  # Offsets from the sprite centre, [N, 1, W] and [N, W, 1].
  dx = (ox[:, None] + centres[None, :] - cx[:, None])[:, None, :]
  dy = (oy[:, None] + centres[None, :] - cy[:, None])[:, :, None]
  cos = np.cos(orientations)[:, None, None]
  sin = np.sin(orientations)[:, None, None]
  # Undo the sprite's rotation: it is drawn turned counter-clockwise as
  # displayed, q -> (qx cos + qy sin, -qx sin + qy cos) with y down.
  qx = dx * cos - dy * sin
  qy = dx * sin + dy * cos
  windows = np.zeros((n, window, window), dtype=bool)
  for shape in np.unique(shapes):
    rows = shapes == shape
    windows[rows] = _inside(int(shape), qx[rows], qy[rows],
                            scales[rows][:, None, None])
  images = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
  ii = (oy[:, None] + np.arange(window))[:, :, None]
  jj = (ox[:, None] + np.arange(window))[:, None, :]
  images[np.arange(n)[:, None, None], ii, jj] = windows
  return images


def render(shape: int, scale: float, orientation: float, x: float,
           y: float) -> np.ndarray:
  """One sprite, uint8 [64, 64] of 0 and 1; see render_batch for the args."""
  return render_batch([shape], [scale], [orientation], [x], [y])[0]


def render_classes(classes: np.ndarray) -> np.ndarray:
  """uint8 [N, 64, 64] images of class-index rows [N, 5] (see factor_grid)."""
  classes = np.asarray(classes)
  values = factor_values(classes)
  return render_batch(classes[:, 0], *values[:, 1:].T)


@dataclasses.dataclass
class DspritesProceduralConfig(tfds.core.BuilderConfig):
  """Which part of the grid to write: every k-th value of each factor."""
  strides: tuple[int, ...] = (1, 1, 1, 1, 1)


class DspritesProcedural(tfds.core.GeneratorBasedBuilder):
  """dSprites rendered from its factor grid, with tfds' `dsprites` features."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [
      DspritesProceduralConfig(
          name='full', strides=(1, 1, 1, 1, 1),
          description='All 737,280 images of the dSprites grid.'),
      # 3 shapes x scales (0.5, 1) x 5 orientations x 4 x 4 positions = 480
      # images, for tests; labels stay indices into the full grid.
      DspritesProceduralConfig(
          name='small', strides=(1, 5, 8, 8, 8),
          description='A strided 480-image subset of the grid, for tests.'),
  ]

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # As in rendered_chairs: tfds 4.9's default needs a backport that Python
    # 3.11 installs lack; this is the value it computes when it works.
    return epath.Path(inspect.getfile(cls))

  def _info(self) -> tfds.core.DatasetInfo:
    labels = {
        f'label_{name}': tfds.features.ClassLabel(num_classes=size)
        for name, size in zip(FACTOR_NAMES, FACTOR_SIZES)}
    values = {
        f'value_{name}': tfds.features.Tensor(shape=[], dtype=np.float32)
        for name in FACTOR_NAMES}
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            'dSprites (Matthey et al. 2017) rendered procedurally from its '
            'factor grid: 2D square, ellipse and heart sprites, 64x64 binary '
            '(pixel values 0 and 1), with the features of tfds `dsprites`.'),
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 1)),
            **labels,
            **values,
        }),
        supervised_keys=None,
        homepage='https://github.com/deepmind/dsprites-dataset',
        citation="""\
@misc{dsprites17,
  author = {Loic Matthey and Irina Higgins and Demis Hassabis and
            Alexander Lerchner},
  title = {dSprites: Disentanglement testing Sprites dataset},
  howpublished = {https://github.com/deepmind/dsprites-dataset/},
  year = {2017},
}
""",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download.
    # Like tfds' `dsprites`: one split, no predefined train/test.
    return {'train': self._generate_examples(self.builder_config.strides)}

  def _generate_examples(self, strides: tuple[int, ...]) -> Iterator:
    classes = factor_grid(tuple(strides))
    # One (shape, scale, orientation) block of positions at a time: vectorised
    # rendering with bounded memory (1024 images of the full grid per block).
    block = len(np.arange(0, FACTOR_SIZES[3], strides[3])) * len(
        np.arange(0, FACTOR_SIZES[4], strides[4]))
    for start in range(0, len(classes), block):
      rows = classes[start:start + block]
      images = render_classes(rows)
      values = factor_values(rows).astype(np.float32)
      keys = grid_index(rows)
      for key, image, label, value in zip(keys, images, rows, values):
        example = {'image': image[:, :, None]}
        for i, name in enumerate(FACTOR_NAMES):
          example[f'label_{name}'] = int(label[i])
          example[f'value_{name}'] = value[i]
        # The key is the image's index in the release, as in tfds' `dsprites`.
        yield int(key), example


def prepare(data_dir: str, config_name: str = 'full') -> str:
  """Renders and writes `dsprites_procedural/<config_name>` into `data_dir`; returns its dir.

  Needs no source files (the grid is rendered here). Idempotent: a prepared
  dataset is reused as is. The full grid takes ~8 minutes on 2 CPU cores.
  """
  builder = DspritesProcedural(data_dir=data_dir, config=config_name)
  if not builder.data_path.exists():
    # Nothing is downloaded: keep tfds' scratch `downloads/` dirs out of
    # `data_dir`.
    with tempfile.TemporaryDirectory(prefix='lgae_dsprites_') as download_dir:
      builder.download_and_prepare(
          download_dir=download_dir,
          download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return os.fspath(builder.data_dir)
