"""Decoding image files to RGB uint8 with PIL (no TensorFlow), for training and eval.

One reading rule for every image the package opens, written once in `user_files`
(EXIF orientation, 16-bit to the high byte, palette, CMYK): the dataset builder, the
folder source and evaluation take RGB with alpha composited on white (`to_rgb_uint8`);
users' files keep their layout and alpha (`user_files.read_image`).
"""

import hashlib
import io
import pathlib
import re
import threading
from typing import Iterable, List

from absl import logging
import numpy as np
from PIL import Image

from flax_inpaint import errors
from flax_inpaint.data import user_files

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.webp', '.bmp', '.gif', '.tif', '.tiff')


def list_image_files(root) -> List[pathlib.Path]:
  """Every file under `root` (any nesting), sorted; non-images are kept so that the
  caller can count them as skipped."""
  root = pathlib.Path(root).expanduser()
  if not root.is_dir():
    raise FileNotFoundError(f'{root}: no such folder of images')
  return sorted(p for p in root.rglob('*') if p.is_file() and not p.name.startswith('.'))


def to_rgb_uint8(image: Image.Image, raw_mode: str = '', name: str = '<image>') -> np.ndarray:
  """A decoded PIL image -> [H, W, 3] uint8 for training and eval.

  The one reading rule (`user_files.to_layout`: 16-bit to its high byte, palette, CMYK,
  1-bit), then greyscale replicated and alpha composited on white (a transparent cover
  background is white, as viewers show it). Users' files keep their alpha instead
  (`user_files.read_image`): only the repaired RGB goes through the model.
  """
  pixels, layout = user_files.to_layout(image, raw_mode, name)
  rgb = user_files.rgb_of(pixels)
  if layout not in ('LA', 'RGBA'):
    return rgb
  alpha = pixels[..., -1:].astype(np.uint32)
  over_white = (rgb.astype(np.uint32) * alpha + 255 * (255 - alpha) + 127) // 255
  return over_white.astype(np.uint8)


def fit_square(image: Image.Image, size: int, fit: str = 'crop') -> Image.Image:
  """Centre-crops to a square ('crop') or squashes ('resize'), then resizes to size^2."""
  if fit == 'crop':
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side))
  elif fit != 'resize':
    raise ValueError(f'data.fit={fit!r}: use crop or resize')
  if image.size != (size, size):
    image = image.resize((size, size), Image.Resampling.LANCZOS)
  return image


def decode(data: bytes, *, name='<bytes>', size=None, fit='crop', min_size=1) -> np.ndarray:
  """Encoded bytes -> RGB uint8 [size, size, 3] (or the original size if size=None).

  Raises:
    errors.BadImageError: empty, truncated, corrupt, not an image, or smaller than min_size.
  """
  if not data:
    raise errors.BadImageError(f'{name}: empty file')
  try:
    image = Image.open(io.BytesIO(data))
    if image.format == 'JPEG' and size and min(image.size) >= 2 * size:
      # Decode at a reduced DCT scale: several times faster for large JPEGs.
      image.draft('RGB', (size, size))
    image, raw_mode, _ = user_files.as_displayed(image)  # EXIF orientation applied.
    rgb = to_rgb_uint8(image, raw_mode, name)
  except errors.ImageFileError as e:  # A floating-point image.
    raise errors.BadImageError(str(e)) from e
  except Exception as e:  # PIL raises many types for bad files.
    # PIL names the in-memory buffer (<_io.BytesIO object at 0x...>), not the file.
    reason = re.sub(r'\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>', '', str(e))
    raise errors.BadImageError(
        f'{name}: not a decodable image ({type(e).__name__}: {reason})'
    ) from e
  if min(image.size) < min_size:
    raise errors.BadImageError(
        f'{name}: {image.size[0]}x{image.size[1]} is smaller than ' f'data.min_size={min_size}'
    )
  image = Image.fromarray(rgb)
  return np.asarray(fit_square(image, size, fit) if size else image, np.uint8)


def load(path, **kwargs) -> np.ndarray:
  path = pathlib.Path(path)
  return decode(path.read_bytes(), name=str(path), **kwargs)


def split_of(name: str) -> str:
  """Deterministic split by a hash of the file name without folder or extension (so a
  re-encoded or moved file keeps its split): ~98 / 1 / 1 %."""
  stem = pathlib.PurePosixPath(name).stem
  bucket = int(hashlib.sha1(stem.encode()).hexdigest()[:8], 16) % 100
  return 'train' if bucket < 98 else ('validation' if bucket < 99 else 'test')


def save_png(array: np.ndarray, path) -> None:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.asarray(array, np.uint8)).save(path)


def grid(rows: Iterable[Iterable[np.ndarray]], pad: int = 2) -> np.ndarray:
  """Tiles rows of equal-size [H, W, 3] float [0,1] or uint8 images into one uint8 image."""
  rows = [[to_uint8(im) for im in row] for row in rows]
  height, width = rows[0][0].shape[:2]
  ncols = max(len(r) for r in rows)
  out = np.full((len(rows) * (height + pad) + pad, ncols * (width + pad) + pad, 3), 255, np.uint8)
  for i, row in enumerate(rows):
    for j, im in enumerate(row):
      y, x = pad + i * (height + pad), pad + j * (width + pad)
      out[y : y + height, x : x + width] = im
  return out


def to_uint8(image) -> np.ndarray:
  """uint8 of an image: float [0, 1] rounded to the nearest level; one channel made RGB."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    image = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  return image


def sample_photos(size: int) -> np.ndarray:
  """scikit-image's 8 bundled colour images, centre-cropped and resized: [8, s, s, 3]."""
  import skimage.data

  names = (
      'astronaut',
      'chelsea',
      'coffee',
      'hubble_deep_field',
      'immunohistochemistry',
      'retina',
      'rocket',
      'colorwheel',
  )
  photos = [fit_square(Image.fromarray(getattr(skimage.data, n)()), size) for n in names]
  return np.stack([np.asarray(p.convert('RGB'), np.uint8) for p in photos])


NUM_LOGGED_SKIPS = 5


class SkipCounter:
  """Thread-safe count of skipped files, each counted and logged once (not every epoch);
  the first few are named in the log."""

  def __init__(self, what: str):
    self.what = what
    self.names: List[str] = []
    self._seen = set()
    self._lock = threading.Lock()

  def add(self, name: str, reason: str):
    with self._lock:
      if name in self._seen:
        return
      self._seen.add(name)
      self.names.append(name)
      if len(self.names) <= NUM_LOGGED_SKIPS:
        logging.warning('%s: skipping %s (%s)', self.what, name, reason)

  @property
  def count(self) -> int:
    return len(self.names)

  def summary(self) -> str:
    return f'{self.what}: {self.count} undecodable file(s) skipped so far' + (
        f', e.g. {self.names[0]}' if self.names else ''
    )
