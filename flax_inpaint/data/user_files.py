"""Users' image and mask files: read as they are displayed, written back in their own layout.

Reading (`read_image`, `read_mask`):
  - EXIF orientation is applied, so a phone photo and the mask drawn over it as it is
    displayed match.
  - Pixels keep the file's layout: 'L' (greyscale), 'LA', 'RGB' or 'RGBA', 8 bits per
    channel. 1-bit becomes L (0/255); palette becomes RGB, or RGBA when it has
    transparency; CMYK, YCbCr and LAB become RGB.
  - 16-bit files (and 32-bit integer ones) are cut to their high 8 bits, as PIL itself
    decodes 16-bit RGB PNGs, with one `errors.ImageFileWarning` naming the file. Floating-point
    images are refused.
  - A mask pixel is a hole if any colour channel is >= the threshold (so red strokes count,
    whose luminance is only 76) and, for masks with alpha, it is not transparent. The
    threshold keeps JPEG noise (tens of levels around edges) from growing the holes.
  - A file that is missing, not an image, corrupt or truncated raises `errors.ImageFileError`
    (`errors.MaskError` for masks): one line naming the file, so a caller can report it and go on.
  - So does a file over `max_pixels` (inpaint's --max_pixels, default MAX_PIXELS), from its
    header, before a pixel is decoded. It replaces PIL's decompression-bomb warning (over
    89 megapixels) and error (over 179), which would stop a user's large photo.

Writing back (`restore_layout`): the repair comes back in the file's layout (greyscale stays
greyscale, alpha stays alpha) with every pixel outside the holes bit for bit the input's.
Where it is written (names, PNGs) is `outputs.py`'s.
"""

import dataclasses
import pathlib
import re
import threading
from typing import Optional, Tuple
import warnings

import numpy as np
from PIL import ExifTags
from PIL import Image
from PIL import ImageOps

from flax_inpaint import errors

LAYOUTS = ('L', 'LA', 'RGB', 'RGBA')
# The default limit on an input's pixels: a 108-megapixel photo with a few holes repaired
# in 26 s at 1.5 GB peak on the 2-core CPU (issue 28's report), so about twice that stays
# within a laptop's memory.
MAX_PIXELS = 200_000_000
# PIL's own limit is a module global: switched off under this lock while a file is opened.
_PIL_LIMIT_LOCK = threading.Lock()
# Masks covering more than this fraction of the image are probably inverted.
MAX_HOLE_FRACTION = 0.5
# Colour spaces whose ICC profile still describes the pixels after reading.
_ICC_KEEPING_MODES = (
    '1',
    'L',
    'LA',
    'La',
    'RGB',
    'RGBA',
    'RGBa',
    'RGBX',
    'P',
    'PA',
    'I',
    'I;16',
    'I;16L',
    'I;16B',
    'I;16N',
)
_SIXTEEN_BIT_GREY = ('I', 'I;16', 'I;16L', 'I;16B', 'I;16N')
# Raw modes whose number counts bits per pixel (5-6-5 BMPs), not per channel.
_PACKED_RAW_MODES = ('RGB;15', 'RGB;16', 'BGR;15', 'BGR;16', 'RGBA;15', 'BGRA;15')


@dataclasses.dataclass(frozen=True, eq=False)
class UserImage:
  """An image file's pixels as displayed, in the file's own layout.

  Attributes:
    pixels: uint8 [H, W] ('L'), [H, W, 2] ('LA'), [H, W, 3] ('RGB') or [H, W, 4] ('RGBA').
    mode: the layout of `pixels`, one of LAYOUTS; results are written back in it.
    bit_depth: bits per channel in the file (1, 8, 16, ...); pixels are always 8-bit.
    path: the file.
    exif_transposed: whether an EXIF orientation turned or flipped the stored pixels.
    icc_profile: the file's ICC colour profile, to write with the result (None: none, or
      one that no longer applies, e.g. a CMYK profile after conversion to RGB).
  """

  pixels: np.ndarray
  mode: str
  bit_depth: int
  path: pathlib.Path
  exif_transposed: bool
  icc_profile: Optional[bytes] = None

  @property
  def height(self) -> int:
    return self.pixels.shape[0]

  @property
  def width(self) -> int:
    return self.pixels.shape[1]


def _raw_mode(image: Image.Image) -> str:
  """The decoder's raw mode ('RGB;16B' for a 16-bit RGB PNG that PIL presents as 'RGB')."""
  if not image.tile:
    return ''
  args = image.tile[0][3]
  if isinstance(args, tuple):
    args = args[0] if args else ''
  return args if isinstance(args, str) else ''


def _file_bit_depth(mode: str, raw_mode: str) -> int:
  """Bits per channel in the file, from PIL's mode and the decoder's raw mode."""
  if mode == '1':
    return 1
  if raw_mode in _PACKED_RAW_MODES:
    return 8
  bits = re.search(r';(\d+)', raw_mode) or re.search(r';(\d+)', mode)
  if bits:
    return int(bits.group(1))
  return 32 if mode in ('I', 'F') else 8


def _reason(error: Exception, path: pathlib.Path) -> str:
  """PIL's and the OS's message, without the path repeated in it."""
  if isinstance(error, OSError) and error.strerror:
    return error.strerror
  reason = str(error).replace(f"'{path}'", '').replace(str(path), '').strip(' :')
  return f'{type(error).__name__}: {reason}' if reason else type(error).__name__


def as_displayed(image: Image.Image) -> Tuple[Image.Image, str, bool]:
  """An opened, not yet loaded, PIL image decoded as it is displayed: (the image with EXIF
  orientation applied, its raw mode, whether the orientation changed it). PIL's errors for
  a bad file propagate."""
  raw_mode = _raw_mode(image)
  image.load()
  orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
  return ImageOps.exif_transpose(image), raw_mode, orientation in range(2, 9)


def icc_profile_of(image: Image.Image) -> Optional[bytes]:
  """The ICC profile, where it still describes the pixels after reading (not after CMYK)."""
  return (image.info.get('icc_profile') or None) if image.mode in _ICC_KEEPING_MODES else None


def _open(path, error_class, max_pixels: Optional[int]) -> Tuple[Image.Image, str, bool]:
  """`as_displayed` of the file at `path`; a bad file, or one over `max_pixels` (None: no
  limit), raises `error_class` (one line)."""
  path = pathlib.Path(path)
  with _PIL_LIMIT_LOCK:
    pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
      with Image.open(path) as image:
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
          raise error_class(
              f'{path}: {width}x{height} = {width * height:,} pixels is over the limit of '
              f'{max_pixels:,}: pass --max_pixels={width * height} to repair it anyway'
          )
        return as_displayed(image)
    except error_class:
      raise
    except Exception as e:  # PIL raises many types for bad files.
      raise error_class(f'{path}: not a readable image ({_reason(e, path)})') from e
    finally:
      Image.MAX_IMAGE_PIXELS = pil_limit


def to_layout(image: Image.Image, raw_mode: str, path) -> Tuple[np.ndarray, str]:
  """Any PIL mode -> (uint8 pixels, layout), keeping greyscale and alpha."""
  mode = image.mode
  if mode in _SIXTEEN_BIT_GREY:
    # PIL's own convert('L') clips 16-bit values at 255: keep the high byte instead.
    values = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
    return (values >> 8).astype(np.uint8), 'L'
  if mode == 'F':
    raise errors.ImageFileError(
        f'{path}: floating-point images are not supported: save it with 8 ' 'or 16 bits per channel'
    )
  if mode == 'RGBA' and raw_mode.startswith('LA'):
    mode = 'LA'  # PIL opens 16-bit greyscale + alpha PNGs as RGBA.
  elif mode == '1':
    mode = 'L'
  elif mode in ('P', 'PA'):
    mode = 'RGBA' if mode == 'PA' or 'transparency' in image.info else 'RGB'
  elif mode == 'La':
    mode = 'LA'
  elif mode == 'RGBa':
    mode = 'RGBA'
  elif mode not in LAYOUTS:
    mode = 'RGB'  # CMYK, YCbCr, LAB, HSV, RGBX.
  if image.mode != mode:
    image = image.convert(mode)
  return np.asarray(image, np.uint8), mode


def read_image(path, *, max_pixels: Optional[int] = MAX_PIXELS) -> UserImage:
  """The image file at `path`, as displayed, in its own layout (see the module docstring).

  Raises:
    errors.ImageFileError: missing, not an image, corrupt, truncated, floating-point, or over
      `max_pixels` (None: no limit).
  Warns:
    errors.ImageFileWarning: the file has more than 8 bits per channel.
  """
  path = pathlib.Path(path)
  image, raw_mode, transposed = _open(path, errors.ImageFileError, max_pixels)
  bit_depth = _file_bit_depth(image.mode, raw_mode)
  pixels, layout = to_layout(image, raw_mode, path)
  if bit_depth > 8:
    warnings.warn(
        f'{path} is {bit_depth}-bit: repaired at 8 bits per channel',
        errors.ImageFileWarning,
        stacklevel=2,
    )
  return UserImage(pixels, layout, bit_depth, path, transposed, icc_profile_of(image))


_LAYOUT_OF_CHANNELS = {None: 'L', 2: 'LA', 3: 'RGB', 4: 'RGBA'}


def layout_of(pixels: np.ndarray) -> str:
  """'L', 'LA', 'RGB' or 'RGBA' for uint8 [H, W], [H, W, 2], [H, W, 3], [H, W, 4]."""
  channels = pixels.shape[-1] if pixels.ndim == 3 else None
  if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (channels not in _LAYOUT_OF_CHANNELS):
    raise ValueError(f'expected uint8 H x W (x 2, 3 or 4), got {pixels.dtype} {pixels.shape}')
  return _LAYOUT_OF_CHANNELS[channels]


def model_rgb(user_image: UserImage) -> np.ndarray:
  """uint8 [H, W, 3] for the model: greyscale replicated, alpha left out."""
  return rgb_of(user_image.pixels)


def rgb_of(pixels: np.ndarray) -> np.ndarray:
  """`model_rgb` of bare uint8 pixels in any of the LAYOUTS."""
  if layout_of(pixels) in ('L', 'LA'):
    grey = pixels if pixels.ndim == 2 else pixels[..., 0]
    return np.repeat(grey[..., None], 3, axis=-1)
  return np.ascontiguousarray(pixels[..., :3])


def _luma(rgb: np.ndarray) -> np.ndarray:
  """ITU-R 601 luma exactly as PIL's convert('L') computes it (16-bit fixed point)."""
  rgb = rgb.astype(np.uint32)
  return ((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16).astype(
      np.uint8
  )


def restore_layout(
    user_image: UserImage, repaired_rgb: np.ndarray, hole: np.ndarray, *, opaque_holes: bool = False
) -> np.ndarray:
  """The repair in the file's layout: see `restore_pixels`."""
  return restore_pixels(user_image.pixels, repaired_rgb, hole, opaque_holes=opaque_holes)


def restore_pixels(
    pixels: np.ndarray, repaired_rgb: np.ndarray, hole: np.ndarray, *, opaque_holes: bool = False
) -> np.ndarray:
  """uint8 `pixels` (any of the LAYOUTS) with the hole pixels of uint8 [H, W, 3]
  `repaired_rgb` (as luma for greyscale); every other pixel, and alpha, exactly as given.

  opaque_holes: set alpha to 255 in the holes; for holes that came from the alpha
    (`alpha_hole`), which would otherwise stay transparent and hide the repair.
  """
  layout = layout_of(pixels)
  if repaired_rgb.shape != pixels.shape[:2] + (3,) or hole.shape != pixels.shape[:2]:
    raise ValueError(
        f'repaired {repaired_rgb.shape} and hole {hole.shape} do not fit ' f'pixels {pixels.shape}'
    )
  restored = pixels.copy()
  if layout in ('L', 'LA'):
    grey = restored if layout == 'L' else restored[..., 0]
    grey[hole] = _luma(repaired_rgb[hole])
  else:
    restored[..., :3][hole] = repaired_rgb[hole]
  if opaque_holes and layout in ('LA', 'RGBA'):
    restored[..., -1][hole] = 255
  return restored


def alpha_hole(user_image: UserImage) -> Optional[np.ndarray]:
  """bool [H, W]: alpha < HOLE_THRESHOLD is a hole; None for a file without alpha."""
  if user_image.mode not in ('LA', 'RGBA'):
    return None
  return user_image.pixels[..., -1] < HOLE_THRESHOLD


# Mask pixels (any colour channel) at or above this are holes; alpha below it is a hole in
# an image without a mask. The one place this rule is written: everyone else reads it.
HOLE_THRESHOLD = 128
# The example that `flax-inpaint inpaint --example` repairs: scikit-image's coffee photo
# (CC0, Rachel Michetti) with a scratch and a box painted on it as its mask.
EXAMPLE_DIR = pathlib.Path(__file__).resolve().parent / 'example'
EXAMPLE_IMAGE = EXAMPLE_DIR / 'coffee.jpg'
EXAMPLE_MASK = EXAMPLE_DIR / 'coffee_mask.png'


def _check_threshold(threshold: int) -> None:
  if not 1 <= threshold <= 255:
    raise ValueError(f'mask_threshold={threshold}: use 1..255 (mask values >= it are holes)')


def hole_of(mask_pixels: np.ndarray, threshold: int = HOLE_THRESHOLD) -> np.ndarray:
  """bool [H, W]: the holes of uint8 mask pixels in any of the LAYOUTS (the rule of the
  module docstring: any colour channel >= threshold, transparent pixels never)."""
  _check_threshold(threshold)
  layout = layout_of(mask_pixels)
  if layout in ('L', 'LA'):
    colour = mask_pixels if layout == 'L' else mask_pixels[..., 0]
  else:
    colour = mask_pixels[..., :3].max(axis=-1)
  hole = colour >= threshold
  if layout in ('LA', 'RGBA'):
    hole &= mask_pixels[..., -1] >= threshold  # Transparent pixels are no holes.
  return hole


def read_mask(
    path,
    *,
    threshold: int = HOLE_THRESHOLD,
    image: Optional[UserImage] = None,
    max_pixels: Optional[int] = MAX_PIXELS,
) -> np.ndarray:
  """bool [H, W]: the mask file's holes, as displayed (see the module docstring).

  image: the image the mask belongs to; given, the mask is checked against it
    (`check_hole`): a size mismatch raises, an empty or mostly-hole mask warns.

  Raises:
    errors.MaskError: unreadable, over `max_pixels`, or (with `image`) not the image's size.
  """
  path = pathlib.Path(path)
  mask, raw_mode, transposed = _open(path, errors.MaskError, max_pixels)
  hole = hole_of(to_layout(mask, raw_mode, path)[0], threshold)
  if image is not None:
    check_hole(hole, image, mask_path=path, mask_exif_transposed=transposed)
  return hole


def check_hole(
    hole: np.ndarray, image: UserImage, *, mask_path=None, mask_exif_transposed: bool = False
) -> None:
  """Checks a hole mask (from `mask_path`, or None: from the image's alpha) against its image.

  Raises:
    errors.MaskError: the mask is not the image's size, or every pixel is a hole (nothing
      is left to repair from).
  Warns:
    errors.ImageFileWarning: no hole pixel (the caller copies the image through), or holes over
      MAX_HOLE_FRACTION of the image (an inverted mask?).
  """
  if hole.shape != image.pixels.shape[:2]:
    oriented = ' (after EXIF orientation)' if image.exif_transposed or mask_exif_transposed else ''
    raise errors.MaskError(
        f'mask {mask_path} is {hole.shape[1]}x{hole.shape[0]} but image '
        f'{image.path} is {image.width}x{image.height}{oriented}: they must match'
    )
  source = mask_path if mask_path is not None else f'{image.path} (alpha < 128)'
  fraction = hole.mean()
  if fraction == 1:
    raise errors.MaskError(
        f'{source}: every pixel of {image.path} is a hole: no pixel is left to repair '
        'from; holes are white, paint only what to repair'
    )
  if fraction == 0:
    warnings.warn(
        f'{source}: no hole pixels: {image.path} is copied through unchanged',
        errors.ImageFileWarning,
        stacklevel=2,
    )
  elif fraction > MAX_HOLE_FRACTION:
    warnings.warn(
        f'{source}: holes cover {100 * fraction:.1f}% of {image.path} (more than '
        f'{100 * MAX_HOLE_FRACTION:.0f}%): is the mask inverted? Holes are white',
        errors.ImageFileWarning,
        stacklevel=2,
    )
