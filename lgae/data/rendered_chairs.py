"""tfds builder for the rendered 3D Chairs of Aubry et al. (CVPR 2014).

The archive `rendered_chairs.tar` (from the "Seeing 3D chairs" project page)
holds 1393 chair models x 62 views, each a 600x600 RGB PNG of the chair on a
white background:

  rendered_chairs/<chair_id>/renders/image_<view>_p<pitch>_t<theta>_r<r>.png

It cannot be downloaded by tfds (it is large and we run offline), so the
builder reads it from the manual dir. Images are stored already reduced to what
the paper trains on, 64x64 grayscale, so that the prepared dataset is ~100x
smaller than the archive and the input pipeline does no image work per step:

  1. alpha (if any) is composited onto white, the renders' background;
  2. RGB -> luma with PIL's ITU-R 601-2 weights ('L' mode);
  3. the central square of 2/3 of the side (400x400 of 600x600) is kept: the
     chairs are rendered centred with wide white margins, and this crop makes
     them fill the 64x64 frame instead of ~2/3 of it, while the *same* fixed
     crop for every view keeps scale constant across rotations (a per-image
     bounding-box crop would make size vary with the view angle);
  4. box-filter (area) downsampling to 64x64: it averages every source pixel
     exactly once, so thin chair legs survive as grey strokes instead of
     aliasing away, and it has no ringing halos against the white background.

Importing this module registers the builder as `rendered_chairs`.
"""

import inspect
import io
import os
import tarfile
import tempfile
import zlib

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from lgae import errors

ARCHIVE_NAME = 'rendered_chairs.tar'
IMAGE_SIZE = 64
# Fraction of the (square) render kept around its centre; see module docstring.
CROP_FRACTION = 2 / 3

class ArchiveNotFoundError(errors.UserError, FileNotFoundError):
  """`rendered_chairs.tar` is not in the source directory."""


class CorruptArchiveError(errors.UserError, ValueError):
  """`rendered_chairs.tar` (or a render in it) cannot be read."""


_CITATION = """\
@inproceedings{aubry2014seeing,
  title={Seeing 3D chairs: exemplar part-based 2D-3D alignment using a large
         dataset of CAD models},
  author={Aubry, Mathieu and Maturana, Daniel and Efros, Alexei A and
          Russell, Bryan C and Sivic, Josef},
  booktitle={CVPR},
  year={2014}
}
"""


def to_grayscale_64(png_bytes: bytes) -> np.ndarray:
  """Decodes one render and reduces it to uint8 [64, 64, 1] (see module doc)."""
  pil_image = tfds.core.lazy_imports.PIL_Image
  image = pil_image.open(io.BytesIO(png_bytes))
  if image.mode in ('RGBA', 'LA') or 'transparency' in image.info:
    # Converting RGBA straight to 'L' would drop alpha and turn transparent
    # (background) pixels black; the renders' background is white.
    rgba = image.convert('RGBA')
    white = pil_image.new('RGBA', rgba.size, (255, 255, 255, 255))
    image = pil_image.alpha_composite(white, rgba)
  image = image.convert('L')
  width, height = image.size
  side = round(min(width, height) * CROP_FRACTION)
  left, top = (width - side) // 2, (height - side) // 2
  image = image.crop((left, top, left + side, top + side))
  image = image.resize(
      (IMAGE_SIZE, IMAGE_SIZE), resample=pil_image.Resampling.BOX
  )
  return np.asarray(image, dtype=np.uint8)[..., None]


def _parse_member_name(name: str) -> tuple[str, str] | None:
  """Returns (chair_id, file name) for a render's tar path, else None."""
  parts = name.split('/')
  # `.../<chair_id>/renders/<file>.png`; other members (the top directory,
  # `all_chair_names.mat`, stray files) are skipped.
  if len(parts) < 3 or parts[-2] != 'renders':
    return None
  if not parts[-1].lower().endswith('.png') or parts[-1].startswith('.'):
    return None
  return parts[-3], parts[-1]


class RenderedChairs(tfds.core.GeneratorBasedBuilder):
  """Aubry et al. (2014) rendered chairs, 64x64 grayscale."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'Initial release: 64x64 grayscale, 2/3 centre crop.',
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  Download `{ARCHIVE_NAME}` (the rendered images, ~2.5 GB) from the "Seeing 3D
  chairs" project page, https://www.di.ens.fr/willow/research/seeing3Dchairs/ ,
  and place it, unextracted, in the manual dir (e.g. with
  `python -m experiments.prepare_data --dataset=rendered_chairs
  --source_dir=<dir with {ARCHIVE_NAME}>`).
  """

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # tfds 4.9.10's `DatasetBuilder.code_path` references the
    # `importlib_resources` backport, which it only declares as a dependency
    # for Python < 3.9; on 3.11 without it, `download_and_prepare` dies with
    # ModuleNotFoundError. This is the value tfds computes when it works.
    return epath.Path(inspect.getfile(cls))

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            'Renders of 1393 chair CAD models from 62 viewpoints each '
            '(Aubry et al. 2014), centre-cropped to 2/3 of the frame and '
            'reduced to 64x64 grayscale.'
        ),
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 1)),
            # The model's directory name in the archive (a hash-like string).
            # A string rather than a ClassLabel: the full list of ids is only
            # known after streaming the whole 2.5 GB tar once.
            'chair_id': tfds.features.Text(),
            # The render's file name; encodes the view (pitch `p`, azimuth
            # `t`), useful to study the rotation code.
            'filename': tfds.features.Text(),
        }),
        supervised_keys=None,
        homepage='https://www.di.ens.fr/willow/research/seeing3Dchairs/',
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    # `manual_dir` raises with MANUAL_DOWNLOAD_INSTRUCTIONS if the dir is
    # missing; the archive itself is checked here for a clearer message.
    archive = os.path.join(dl_manager.manual_dir, ARCHIVE_NAME)
    if not os.path.isfile(archive):
      raise FileNotFoundError(
          f'{archive} not found. {self.MANUAL_DOWNLOAD_INSTRUCTIONS.strip()}'
      )
    # The archive has no predefined split; evaluation uses a slice of train.
    return {'train': self._generate_examples(archive)}

  def _generate_examples(self, archive: str):
    # Stream mode ('r|*'): one sequential pass, no member index in memory and
    # no extraction to disk, whatever the archive's size or compression.
    with tarfile.open(archive, mode='r|*') as tar:
      for member in tar:
        if not member.isfile():
          continue
        parsed = _parse_member_name(member.name)
        if parsed is None:
          continue
        chair_id, filename = parsed
        try:
          image = to_grayscale_64(tar.extractfile(member).read())
        except tfds.core.lazy_imports.PIL_Image.UnidentifiedImageError as e:
          raise CorruptArchiveError(
              f'{archive}: {member.name} is not a readable image: the archive '
              'is corrupt or truncated; download it again.') from e
        yield member.name, {
            'image': image,
            'chair_id': chair_id,
            'filename': filename,
        }


def prepare(source_dir: str, data_dir: str) -> str:
  """Prepares `rendered_chairs` in `data_dir` from `source_dir/*.tar`.

  Idempotent: an already prepared dataset is reused as is.

  Args:
    source_dir: directory holding `rendered_chairs.tar` (tfds' manual dir).
    data_dir: tfds data dir to write into.

  Returns:
    The prepared dataset directory, `<data_dir>/rendered_chairs/<version>`.

  Raises:
    ArchiveNotFoundError: `source_dir/rendered_chairs.tar` does not exist.
    CorruptArchiveError: the archive, or a render in it, cannot be read
      (nothing is left in `data_dir`: tfds writes into a temporary dir that
      it removes on failure).
  """
  builder = RenderedChairs(data_dir=data_dir)
  # The test tfds' `download_and_prepare` itself uses to reuse a dataset (it
  # writes into a temporary dir and renames it when complete).
  if builder.data_path.exists():
    return os.fspath(builder.data_dir)
  archive = os.path.join(source_dir, ARCHIVE_NAME)
  # Checked before tfds starts, so the error is ours and not wrapped.
  if not os.path.isfile(archive):
    raise ArchiveNotFoundError(
        f'{archive} not found: download {ARCHIVE_NAME} from '
        'https://www.di.ens.fr/willow/research/seeing3Dchairs/ and put it '
        f'in {source_dir}.'
    )
  unreadable = (tarfile.TarError, EOFError, zlib.error)
  # Nothing is downloaded; keep tfds' scratch `downloads/` dirs out of
  # `data_dir`.
  with tempfile.TemporaryDirectory(prefix='lgae_chairs_') as download_dir:
    try:
      builder.download_and_prepare(
          download_dir=download_dir,
          download_config=tfds.download.DownloadConfig(
              manual_dir=source_dir, try_download_gcs=False
          ),
      )
    except unreadable as e:  # (A bad render inside: CorruptArchiveError.)
      raise CorruptArchiveError(
          f'{archive} cannot be read ({type(e).__name__}: '
          f'{" ".join(str(e).split())}): the archive is corrupt or '
          'truncated; download it again.') from e
  return os.fspath(builder.data_dir)
