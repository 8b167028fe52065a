"""data/user_files.py: users' files read as displayed, written back in their own layout, safely.

Every file here is written by the test itself with PIL (or, for 16-bit RGB, which PIL
cannot write, by a 15-line PNG encoder).
"""

import contextlib
import os
import pathlib
import re
import struct
import warnings
import zlib

import numpy as np
from PIL import Image
from PIL import ImageCms
import pytest

from flax_inpaint.data import outputs as outputs_lib
from flax_inpaint.data import user_files
from flax_inpaint.errors import ImageFileError
from flax_inpaint.errors import ImageFileWarning
from flax_inpaint.errors import MaskError

ORIENTATION = 0x0112


def smooth_rgb(height, width, seed=0):
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
  return np.asarray(Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR))


def random_hole(height, width, seed=0):
  hole = np.zeros((height, width), bool)
  hole[height // 4 : height // 2, width // 3 : width // 2] = True
  hole[np.random.default_rng(seed).random((height, width)) < 0.05] = True
  return hole


def save_with_orientation(array, path, orientation, **kwargs):
  exif = Image.Exif()
  exif[ORIENTATION] = orientation
  Image.fromarray(array).save(path, exif=exif, **kwargs)


def write_png16(path, values):
  """A 16-bit PNG of uint16 [H, W, C] values (C = 3: RGB, 4: RGBA), which PIL cannot write."""

  def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

  height, width, channels = values.shape
  colour_type = {3: 2, 4: 6}[channels]
  rows = b''.join(b'\x00' + values[y].astype('>u2').tobytes() for y in range(height))
  header = struct.pack('>IIBBBBB', width, height, 16, colour_type, 0, 0, 0)
  pathlib.Path(path).write_bytes(
      b'\x89PNG\r\n\x1a\n'
      + chunk(b'IHDR', header)
      + chunk(b'IDAT', zlib.compress(rows))
      + chunk(b'IEND', b'')
  )


@contextlib.contextmanager
def no_warnings():
  """Any warning inside fails the test."""
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    yield


# Reading: orientation, layouts, bit depths.


def test_exif_orientation_is_applied_to_image_and_mask(tmp_path):
  # As displayed: 40 rows x 30 columns, a bright block at the top left.
  displayed = np.full((40, 30, 3), 60, np.uint8)
  displayed[:10, :10] = 230
  # Orientation 6: the camera stored the pixels turned 90 degrees; viewers turn them back.
  stored = np.rot90(displayed, k=1)  # 30 rows x 40 columns.
  save_with_orientation(stored, tmp_path / 'photo.jpg', 6, quality=95)
  image = user_files.read_image(tmp_path / 'photo.jpg')
  assert image.pixels.shape == (40, 30, 3) and image.exif_transposed
  assert image.pixels[:10, :10].mean() > 200 and image.pixels[20:, 15:].mean() < 90
  # A mask drawn over the photo as displayed (30 x 40) is accepted.
  drawn = np.zeros((40, 30), np.uint8)
  drawn[25:35, 5:20] = 255
  Image.fromarray(drawn).save(tmp_path / 'drawn.png')
  with no_warnings():
    hole = user_files.read_mask(tmp_path / 'drawn.png', image=image)
  np.testing.assert_array_equal(hole, drawn > 0)
  # A mask stored turned, with the same EXIF tag, is turned back the same way.
  save_with_orientation(np.rot90(drawn, k=1), tmp_path / 'turned.png', 6)
  np.testing.assert_array_equal(
      user_files.read_mask(tmp_path / 'turned.png', image=image), drawn > 0
  )
  # A mask the size of the stored pixels does not fit the photo as displayed.
  Image.fromarray(np.rot90(drawn, k=1)).save(tmp_path / 'stored.png')
  with pytest.raises(MaskError) as error:
    user_files.read_mask(tmp_path / 'stored.png', image=image)
  assert str(error.value) == (
      f'mask {tmp_path / "stored.png"} is 40x30 but image {tmp_path / "photo.jpg"} is 30x40 '
      '(after EXIF orientation): they must match'
  )


@pytest.mark.parametrize('mode', ['L', 'LA', 'RGB', 'RGBA'])
def test_layout_is_kept_and_pixels_outside_holes_are_exact(tmp_path, mode):
  rng = np.random.default_rng(1)
  channels = {'L': (), 'LA': (2,), 'RGB': (3,), 'RGBA': (4,)}[mode]
  pixels = rng.integers(0, 256, (30, 40) + channels).astype(np.uint8)
  Image.fromarray(pixels).save(tmp_path / 'in.png')
  with no_warnings():
    image = user_files.read_image(tmp_path / 'in.png')
  assert (image.mode, image.bit_depth, image.exif_transposed) == (mode, 8, False)
  np.testing.assert_array_equal(image.pixels, pixels)
  rgb = user_files.model_rgb(image)
  assert rgb.shape == (30, 40, 3) and rgb.dtype == np.uint8
  grey = pixels if mode == 'L' else pixels[..., 0]
  np.testing.assert_array_equal(
      rgb, np.stack([grey] * 3, -1) if mode in ('L', 'LA') else pixels[..., :3]
  )
  hole = random_hole(30, 40)
  repaired_rgb = rng.integers(0, 256, (30, 40, 3)).astype(np.uint8)
  restored = user_files.restore_layout(image, repaired_rgb, hole)
  written = outputs_lib.write_png(restored, tmp_path / 'out.png')
  with Image.open(written) as reread:
    assert reread.mode == mode
    reread = np.asarray(reread)
  np.testing.assert_array_equal(reread, restored)
  np.testing.assert_array_equal(reread[~hole], pixels[~hole])
  if mode in ('LA', 'RGBA'):
    np.testing.assert_array_equal(reread[..., -1], pixels[..., -1])  # Alpha stays alpha.
  if mode in ('L', 'LA'):
    # Luma as PIL's convert('L'): ITU-R 601, L = R * 299/1000 + G * 587/1000 + B * 114/1000.
    expected = np.asarray(Image.fromarray(repaired_rgb).convert('L'))
    np.testing.assert_array_equal((reread if mode == 'L' else reread[..., 0])[hole], expected[hole])
  else:
    np.testing.assert_array_equal(reread[..., :3][hole], repaired_rgb[hole])


def test_greyscale_repair_is_pils_luma_to_the_last_level(tmp_path):
  # (R*299 + G*587 + B*114 + 500) // 1000 differs from PIL on ~1 colour in 1500.
  Image.new('L', (512, 512)).save(tmp_path / 'grey.png')
  image = user_files.read_image(tmp_path / 'grey.png')
  colours = np.random.default_rng(0).integers(0, 256, (512, 512, 3)).astype(np.uint8)
  restored = user_files.restore_layout(image, colours, np.ones((512, 512), bool))
  np.testing.assert_array_equal(restored, np.asarray(Image.fromarray(colours).convert('L')))


def test_alpha_holes_and_opaque_holes(tmp_path):
  rgba = np.dstack([smooth_rgb(20, 20), np.full((20, 20), 255, np.uint8)])
  rgba[5:10, 5:10, 3] = 0  # Transparent: the hole.
  rgba[0, 0, 3] = 200  # Translucent, not a hole.
  Image.fromarray(rgba).save(tmp_path / 'holed.png')
  image = user_files.read_image(tmp_path / 'holed.png')
  hole = user_files.alpha_hole(image)
  expected = np.zeros((20, 20), bool)
  expected[5:10, 5:10] = True
  np.testing.assert_array_equal(hole, expected)
  repaired = user_files.restore_layout(
      image, np.zeros((20, 20, 3), np.uint8), hole, opaque_holes=True
  )
  assert (repaired[hole, 3] == 255).all() and repaired[0, 0, 3] == 200
  Image.fromarray(smooth_rgb(20, 20)).save(tmp_path / 'opaque.png')
  assert user_files.alpha_hole(user_files.read_image(tmp_path / 'opaque.png')) is None


def test_sixteen_bit_greyscale_is_named_in_one_warning(tmp_path):
  values = np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 341
  path = tmp_path / 'scan.png'
  Image.fromarray(values).save(path)  # PIL mode I;16: a 16-bit greyscale PNG.
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    image = user_files.read_image(path)
  assert [str(w.message) for w in caught] == [f'{path} is 16-bit: repaired at 8 bits per channel']
  assert caught[0].category is ImageFileWarning
  assert (image.mode, image.bit_depth) == ('L', 16)
  np.testing.assert_array_equal(image.pixels, values >> 8)  # The high byte, not clipped.


def test_sixteen_bit_rgb_is_named_in_a_warning(tmp_path):
  values = np.random.default_rng(0).integers(0, 65536, (6, 5, 3)).astype(np.uint16)
  write_png16(tmp_path / 'deep.png', values)
  with pytest.warns(ImageFileWarning, match=r'deep.png is 16-bit: repaired at 8 bits'):
    image = user_files.read_image(tmp_path / 'deep.png')
  assert (image.mode, image.bit_depth) == ('RGB', 16)
  np.testing.assert_array_equal(image.pixels, values >> 8)


def test_palette_and_cmyk_become_rgb(tmp_path):
  rgb = smooth_rgb(16, 16)
  Image.fromarray(rgb).convert('P').save(tmp_path / 'palette.png')
  transparent = Image.fromarray(rgb).convert('P')
  transparent.info['transparency'] = 0
  transparent.save(tmp_path / 'transparent.png', transparency=0)
  Image.fromarray(rgb).convert('CMYK').save(tmp_path / 'print.jpg', quality=95)
  Image.fromarray(rgb[..., 0] > 128).save(tmp_path / 'bilevel.png')  # Mode '1'.
  with no_warnings():
    modes = {
        name: user_files.read_image(tmp_path / name)
        for name in ('palette.png', 'transparent.png', 'print.jpg', 'bilevel.png')
    }
  assert {name: (i.mode, i.bit_depth) for name, i in modes.items()} == {
      'palette.png': ('RGB', 8),
      'transparent.png': ('RGBA', 8),
      'print.jpg': ('RGB', 8),
      'bilevel.png': ('L', 1),
  }
  np.testing.assert_array_equal(np.unique(modes['bilevel.png'].pixels), [0, 255])
  assert np.abs(modes['print.jpg'].pixels.astype(int) - rgb).mean() < 4


def test_icc_profile_is_written_back(tmp_path):
  profile = ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()
  Image.fromarray(smooth_rgb(8, 8)).save(tmp_path / 'tagged.png', icc_profile=profile)
  image = user_files.read_image(tmp_path / 'tagged.png')
  outputs_lib.write_png(image.pixels, tmp_path / 'out.png', icc_profile=image.icc_profile)
  with Image.open(tmp_path / 'out.png') as written:
    assert written.info['icc_profile'] == profile


# Masks.


def test_jpeg_mask_noise_does_not_grow_the_holes(tmp_path):
  mask = np.zeros((96, 128), np.uint8)
  # Blocks off the 8 x 8 JPEG grid, so their edges ring.
  mask[13:45, 19:63] = 255
  mask[57:90, 77:121] = 255
  mask[5:8, 100:126] = 255
  Image.fromarray(mask).save(tmp_path / 'mask.jpg', quality=75)
  hole = user_files.read_mask(tmp_path / 'mask.jpg')
  np.testing.assert_array_equal(hole, mask > 0)
  # Counting every non-zero pixel as a hole (the rule before thresholds) grows them > 10%.
  with Image.open(tmp_path / 'mask.jpg') as decoded:
    assert (np.asarray(decoded) > 0).sum() > 1.1 * (mask > 0).sum()


def test_colour_strokes_are_holes_and_transparent_pixels_are_not(tmp_path):
  rgba = np.zeros((10, 10, 4), np.uint8)
  rgba[..., :3] = 255  # White everywhere, but only opaque pixels count.
  rgba[2:4, :, 3] = 255
  rgba[6:8, :] = (255, 0, 0, 255)  # Red strokes: luminance 76, still holes.
  Image.fromarray(rgba).save(tmp_path / 'strokes.png')
  hole = user_files.read_mask(tmp_path / 'strokes.png')
  np.testing.assert_array_equal(hole.any(axis=1), [0, 0, 1, 1, 0, 0, 1, 1, 0, 0])
  assert hole[hole.any(axis=1)].all()


def test_threshold_decides_the_holes(tmp_path):
  Image.fromarray(np.array([[0, 127, 128, 255]], np.uint8)).save(tmp_path / 'levels.png')
  np.testing.assert_array_equal(user_files.read_mask(tmp_path / 'levels.png'), [[0, 0, 1, 1]])
  np.testing.assert_array_equal(
      user_files.read_mask(tmp_path / 'levels.png', threshold=1), [[0, 1, 1, 1]]
  )
  with pytest.raises(ValueError, match=r'^mask_threshold=0: use 1..255'):
    user_files.read_mask(tmp_path / 'levels.png', threshold=0)


def test_empty_and_mostly_hole_masks_warn_and_an_all_hole_mask_raises(tmp_path):
  Image.fromarray(smooth_rgb(20, 30)).save(tmp_path / 'photo.png')
  image = user_files.read_image(tmp_path / 'photo.png')
  mostly = np.full((20, 30), 255, np.uint8)
  mostly[0, :6] = 0  # 1% of the image left.
  Image.fromarray(mostly).save(tmp_path / 'mostly.png')
  with pytest.warns(ImageFileWarning) as caught:
    user_files.read_mask(tmp_path / 'mostly.png', image=image)
  assert [str(w.message) for w in caught] == [
      f'{tmp_path / "mostly.png"}: holes cover 99.0% of {tmp_path / "photo.png"} (more than '
      '50%): is the mask inverted? Holes are white'
  ]
  Image.new('L', (30, 20), 255).save(tmp_path / 'white.png')
  with pytest.raises(MaskError) as raised:
    user_files.read_mask(tmp_path / 'white.png', image=image)
  assert str(raised.value) == (
      f'{tmp_path / "white.png"}: every pixel of {tmp_path / "photo.png"} is a hole: no pixel '
      'is left to repair from; holes are white, paint only what to repair'
  )
  Image.new('L', (30, 20), 0).save(tmp_path / 'black.png')
  with pytest.warns(ImageFileWarning) as caught:
    hole = user_files.read_mask(tmp_path / 'black.png', image=image)
  assert not hole.any()
  assert [str(w.message) for w in caught] == [
      f'{tmp_path / "black.png"}: no hole pixels: {tmp_path / "photo.png"} is copied through '
      'unchanged'
  ]
  # Half and under: silent.
  half = np.zeros((20, 30), np.uint8)
  half[:10] = 255
  Image.fromarray(half).save(tmp_path / 'half.png')
  with no_warnings():
    assert user_files.read_mask(tmp_path / 'half.png', image=image).mean() == 0.5


def test_mask_of_another_size_raises_one_line(tmp_path):
  Image.fromarray(smooth_rgb(20, 30)).save(tmp_path / 'photo.png')
  Image.new('L', (31, 20), 255).save(tmp_path / 'mask.png')
  image = user_files.read_image(tmp_path / 'photo.png')
  with pytest.raises(MaskError) as error:
    user_files.read_mask(tmp_path / 'mask.png', image=image)
  assert str(error.value) == (
      f'mask {tmp_path / "mask.png"} is 31x20 but image '
      f'{tmp_path / "photo.png"} is 30x20: they must match'
  )


# Unreadable files.


def test_corrupt_truncated_and_missing_files_raise_one_line_naming_them(tmp_path):
  (tmp_path / 'text.png').write_text('not an image at all')
  with pytest.raises(ImageFileError) as error:
    user_files.read_image(tmp_path / 'text.png')
  assert str(error.value) == (
      f'{tmp_path / "text.png"}: not a readable image '
      '(UnidentifiedImageError: cannot identify image file)'
  )
  Image.fromarray(smooth_rgb(64, 64)).save(tmp_path / 'whole.jpg')
  data = (tmp_path / 'whole.jpg').read_bytes()
  (tmp_path / 'cut.jpg').write_bytes(data[: len(data) // 2])
  with pytest.raises(ImageFileError) as error:  # PIL's reason varies with its version.
    user_files.read_image(tmp_path / 'cut.jpg')
  assert re.fullmatch(r'\S*/cut.jpg: not a readable image \(OSError: [^\n]+\)', str(error.value))
  with pytest.raises(ImageFileError) as error:
    user_files.read_image(tmp_path / 'absent.png')
  assert str(error.value) == (
      f'{tmp_path / "absent.png"}: not a readable image ' '(No such file or directory)'
  )
  with pytest.raises(MaskError, match=r'^\S*text.png: not a readable image'):
    user_files.read_mask(tmp_path / 'text.png')


# Output names and writing.


def test_inputs_sharing_a_stem_get_distinct_names_in_any_order(tmp_path):
  inputs = [tmp_path / 'in' / name for name in ('a.jpg', 'a.png', 'B.png', 'b.webp', 'c.png')]
  out = tmp_path / 'out'
  expected = {
      'a.jpg': 'a.jpg.png',
      'a.png': 'a.png.png',
      'B.png': 'B.png.png',
      'b.webp': 'b.webp.png',
      'c.png': 'c.png',
  }
  for order in (inputs, inputs[::-1]):
    paths = outputs_lib.output_paths(order, out)
    assert {i.name: (o.parent, o.name) for i, o in zip(order, paths)} == {
        name: (out, output) for name, output in expected.items()
    }


def test_subfolders_are_kept_under_root(tmp_path):
  inputs = [tmp_path / 'in' / 'x' / 'a.png', tmp_path / 'in' / 'y' / 'a.png']
  assert outputs_lib.output_paths(inputs, tmp_path / 'out', root=tmp_path / 'in') == [
      tmp_path / 'out' / 'x' / 'a.png',
      tmp_path / 'out' / 'y' / 'a.png',
  ]
  # Without root both would be OUT/a.png.png: refused, naming both.
  with pytest.raises(
      ImageFileError,
      match=r'^\S*x/a.png and \S*y/a.png would both be '
      r'written to \S*out/a.png.png: rename one$',
  ):
    outputs_lib.output_paths(inputs, tmp_path / 'out')


def test_an_input_is_never_overwritten_unless_asked(tmp_path):
  Image.fromarray(smooth_rgb(8, 8)).save(tmp_path / 'a.png')
  before = (tmp_path / 'a.png').read_bytes()
  with pytest.raises(ImageFileError) as error:
    outputs_lib.output_paths([tmp_path / 'a.png'], tmp_path)
  assert str(error.value) == (
      f'{tmp_path / "a.png"}: is an input image and would be '
      'overwritten: choose another output folder, or pass --overwrite'
  )
  assert (tmp_path / 'a.png').read_bytes() == before
  assert outputs_lib.output_paths([tmp_path / 'a.png'], tmp_path, overwrite=True) == [
      tmp_path / 'a.png'
  ]
  # An earlier result is not an input, but is not replaced silently either.
  (tmp_path / 'out').mkdir()
  (tmp_path / 'out' / 'a.png').write_bytes(b'earlier result')
  with pytest.raises(ImageFileError) as error:
    outputs_lib.output_paths([tmp_path / 'a.png'], tmp_path / 'out')
  assert str(error.value) == (
      f'{tmp_path / "out" / "a.png"}: already exists: choose another '
      'output folder, or pass --overwrite to replace it'
  )
  assert outputs_lib.output_paths([tmp_path / 'a.png'], tmp_path / 'out', overwrite=True) == [
      tmp_path / 'out' / 'a.png'
  ]


def test_write_png_replaces_atomically_with_the_users_umask(tmp_path):
  target = tmp_path / 'sub' / 'out.png'
  outputs_lib.write_png(np.zeros((4, 5), np.uint8), target)
  outputs_lib.write_png(np.full((6, 7, 3), 9, np.uint8), target)  # Replaces it.
  with Image.open(target) as written:
    assert (written.mode, written.size) == ('RGB', (7, 6))
  assert os.listdir(target.parent) == ['out.png']  # No temporary file left.
  umask = os.umask(0)
  os.umask(umask)
  assert target.stat().st_mode & 0o777 == 0o666 & ~umask
  with pytest.raises(ValueError, match=r'expected uint8 H x W \(x 2, 3 or 4\), got float32'):
    outputs_lib.write_png(np.zeros((4, 5), np.float32), target)
  with Image.open(target) as unchanged:
    assert unchanged.size == (7, 6)
  assert os.listdir(target.parent) == ['out.png']


def test_an_image_over_the_pixel_limit_is_one_line_before_decoding(tmp_path):
  """Our limit, from the header, replaces PIL's decompression-bomb warning (over 89
  megapixels) and error (over 179): a 9500 x 9500 file is refused in one line without it."""
  Image.new('1', (9500, 9500)).save(tmp_path / 'big.png')  # 90,250,000 pixels, 11 kB.
  with warnings.catch_warnings():
    warnings.simplefilter('error')  # PIL's warning would raise here.
    with pytest.raises(ImageFileError) as raised:
      user_files.read_image(tmp_path / 'big.png', max_pixels=90_000_000)
    with pytest.raises(MaskError) as mask_raised:
      user_files.read_mask(tmp_path / 'big.png', max_pixels=1000)
  assert str(raised.value) == (
      f'{tmp_path}/big.png: 9500x9500 = 90,250,000 pixels is over the limit of 90,000,000: '
      'pass --max_pixels=90250000 to repair it anyway'
  )
  assert 'over the limit of 1,000' in str(mask_raised.value)
  assert Image.MAX_IMAGE_PIXELS == 89_478_485  # PIL's own limit is back for others.


def test_under_the_pixel_limit_a_file_over_pils_limit_reads_without_its_warning(tmp_path):
  Image.new('1', (9500, 9500), 1).save(tmp_path / 'big.png')
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    hole = user_files.read_mask(tmp_path / 'big.png')
  assert hole.shape == (9500, 9500) and hole.all()
