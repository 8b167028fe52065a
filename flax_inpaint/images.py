"""Decoding image files to RGB uint8 with PIL (no TensorFlow).

One decoding path for the dataset builder, the folder source, evaluation and
inpainting: any mode (grayscale, palette, RGBA, CMYK, 16-bit) becomes RGB uint8.
"""

import hashlib
import io
import pathlib
import re
from typing import Iterable, List

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.webp', '.bmp', '.gif', '.tif', '.tiff')


class BadImageError(ValueError):
  """A file that is not a decodable image of at least the minimum size."""


def list_image_files(root) -> List[pathlib.Path]:
  """Every file under `root` (any nesting), sorted; non-images are kept so that the
  caller can count them as skipped."""
  root = pathlib.Path(root).expanduser()
  if not root.is_dir():
    raise FileNotFoundError(f'{root}: no such folder of images')
  return sorted(p for p in root.rglob('*') if p.is_file() and not p.name.startswith('.'))


def to_rgb_uint8(image: Image.Image) -> np.ndarray:
  """Any PIL mode -> [H, W, 3] uint8. Alpha is composited on white."""
  if image.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
    array = np.asarray(image, np.float64)
    peak = 65535.0 if array.max() > 255 else 255.0
    array = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(array[..., None], 3, axis=-1)
  if image.mode == 'P':
    image = image.convert('RGBA')
  if image.mode in ('RGBA', 'LA', 'PA'):
    rgba = image.convert('RGBA')
    background = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
    image = Image.alpha_composite(background, rgba)
  return np.asarray(image.convert('RGB'), np.uint8)


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
    BadImageError: empty, truncated, corrupt, not an image, or smaller than min_size.
  """
  if not data:
    raise BadImageError(f'{name}: empty file')
  try:
    image = Image.open(io.BytesIO(data))
    if image.format == 'JPEG' and size and min(image.size) >= 2 * size:
      # Decode at a reduced DCT scale: several times faster for large JPEGs.
      image.draft('RGB', (size, size))
    image.load()
  except Exception as e:  # PIL raises many types for bad files.
    # PIL names the in-memory buffer (<_io.BytesIO object at 0x...>), not the file.
    reason = re.sub(r'\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>', '', str(e))
    raise BadImageError(f'{name}: not a decodable image ({type(e).__name__}: {reason})') from e
  if min(image.size) < min_size:
    raise BadImageError(
        f'{name}: {image.size[0]}x{image.size[1]} is smaller than ' f'data.min_size={min_size}'
    )
  image = Image.fromarray(to_rgb_uint8(image))
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
  rows = [[_to_uint8(im) for im in row] for row in rows]
  height, width = rows[0][0].shape[:2]
  ncols = max(len(r) for r in rows)
  out = np.full((len(rows) * (height + pad) + pad, ncols * (width + pad) + pad, 3), 255, np.uint8)
  for i, row in enumerate(rows):
    for j, im in enumerate(row):
      y, x = pad + i * (height + pad), pad + j * (width + pad)
      out[y : y + height, x : x + width] = im
  return out


def _to_uint8(image) -> np.ndarray:
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
