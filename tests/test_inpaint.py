"""Repairing users' files: the CLI, the Python API, crops at any size, the exported model."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from conftest import ROOT, run_main
from flax_inpaint import Inpainter

CONFIG = '--config=configs/test.py'


@pytest.fixture(scope='module')
def workdir(tiny_run):
  return tiny_run


@pytest.fixture(scope='module')
def inpainter(tiny_inpainter):
  return tiny_inpainter


def photo(height, width, seed=0, channels=3):
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 256, (8, 8, channels), np.uint8)
  mode = {1: 'L', 3: 'RGB', 4: 'RGBA'}[channels]
  image = Image.fromarray(base.squeeze(-1) if channels == 1 else base, mode)
  return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


def hole_mask(height, width, boxes):
  hole = np.zeros((height, width), bool)
  for y, x, h, w in boxes:
    hole[y:y + h, x:x + w] = True
  return hole


def save_mask(hole, path):
  Image.fromarray(hole.astype(np.uint8) * 255).save(path)


def error_lines(output):
  return [line for line in output.splitlines() if line.startswith('error:')]


def test_api_repairs_only_the_holes_at_any_size(inpainter):
  image = photo(217, 301)
  hole = hole_mask(217, 301, [(50, 100, 40, 60), (200, 290, 17, 11)])  # One at the border.
  repaired = inpainter.inpaint(image, hole)
  assert repaired.shape == image.shape and repaired.dtype == np.uint8
  np.testing.assert_array_equal(repaired[~hole], image[~hole])
  assert not np.array_equal(repaired[hole], image[hole])
  # PIL in, PIL out, same mode; greyscale stays greyscale.
  grey = Image.fromarray(photo(64, 80, channels=1))
  out = inpainter.inpaint(grey, Image.fromarray(hole_mask(64, 80, [(5, 5, 9, 9)]).astype(
      np.uint8) * 255))
  assert isinstance(out, Image.Image) and out.mode == 'L' and out.size == (80, 64)
  assert np.array_equal(inpainter.inpaint(image, np.zeros_like(hole)), image)


def test_crops_run_the_same_window_sizes_for_any_image_size(workdir):
  fresh = Inpainter.from_workdir(workdir)
  for height, width in [(40, 50), (64, 64), (100, 37), (128, 96), (200, 200), (33, 33)]:
    fresh.inpaint(photo(height, width), hole_mask(height, width, [(3, 4, 6, 7)]))
  assert len(fresh.program_shapes) <= 3, fresh.program_shapes
  assert {shape[1] for shape in fresh.program_shapes} <= set(fresh.options.buckets)


def test_cli_repairs_a_folder_names_every_output_and_counts_failures(workdir, inpainter,
                                                                     tmp_path):
  images, masks, out = tmp_path / 'in', tmp_path / 'masks', tmp_path / 'out'
  images.mkdir()
  masks.mkdir()
  rgb, grey, rgba = photo(48, 64, 1), photo(40, 40, 2, channels=1), photo(36, 52, 3, 4)
  Image.fromarray(rgb).save(images / 'a.png')
  Image.fromarray(rgb).save(images / 'a.jpg', quality=95)  # Same stem: both kept.
  Image.fromarray(grey, 'L').save(images / 'grey.png')
  Image.fromarray(rgba, 'RGBA').save(images / 'alpha.png')
  (images / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 40)
  holes = {'a': hole_mask(48, 64, [(10, 10, 12, 12)]), 'grey': hole_mask(40, 40, [(5, 5, 8, 8)]),
           'alpha': hole_mask(36, 52, [(20, 30, 6, 9)]), 'broken': hole_mask(8, 8, [])}
  for stem, hole in holes.items():
    save_mask(hole, masks / f'{stem}.png')
  result = run_main(['--mode=inpaint', f'--input={images}', f'--mask={masks}',
                     f'--output={out}'], workdir)
  assert result.returncode == 2, result.stdout[-3000:]
  written = sorted(line for line in result.stdout.splitlines() if line.startswith(str(out)))
  assert written == [str(out / n) for n in ('a.jpg.png', 'a.png.png', 'alpha.png', 'grey.png')]
  errors = error_lines(result.stdout)
  assert len(errors) == 2 and errors[0].startswith(f'error: {images}/broken.png')
  assert errors[1] == ('error: 1 of 5 image(s) could not be repaired (see above); the others '
                       'were written')
  # The CLI and the API give the same pixels.
  np.testing.assert_array_equal(np.asarray(Image.open(out / 'a.png.png')),
                                inpainter.inpaint(rgb, holes['a']))
  grey_out = Image.open(out / 'grey.png')
  assert grey_out.mode == 'L'
  np.testing.assert_array_equal(np.asarray(grey_out)[~holes['grey']], grey[~holes['grey']])
  alpha_out = np.asarray(Image.open(out / 'alpha.png'))
  assert alpha_out.shape == (36, 52, 4)
  np.testing.assert_array_equal(alpha_out[~holes['alpha']], rgba[~holes['alpha']])
  np.testing.assert_array_equal(alpha_out[..., 3], rgba[..., 3])  # Alpha stays alpha.


def test_an_input_is_never_overwritten(workdir, tmp_path):
  image = photo(40, 40)
  Image.fromarray(image).save(tmp_path / 'x.png')
  save_mask(hole_mask(40, 40, [(4, 4, 8, 8)]), tmp_path / 'x_mask.png')
  before = (tmp_path / 'x.png').read_bytes()
  args = ['--mode=inpaint', f'--input={tmp_path}/x.png', f'--mask={tmp_path}/x_mask.png',
          f'--output={tmp_path}']
  result = run_main(args, workdir)
  assert result.returncode == 2
  [line] = error_lines(result.stdout)
  assert line.startswith(f'error: {tmp_path}/x.png') and '--overwrite' in line
  assert (tmp_path / 'x.png').read_bytes() == before
  assert run_main(args + ['--overwrite'], workdir).returncode == 0
  assert (tmp_path / 'x.png').read_bytes() != before


def test_a_phone_photo_and_its_mask_drawn_as_displayed(workdir, tmp_path):
  """EXIF orientation 6 (rotated 90°): stored 60x40, displayed 40x60; the user draws the
  mask on the displayed 40x60 picture."""
  stored = photo(40, 60)
  exif = Image.Exif()
  exif[0x0112] = 6
  Image.fromarray(stored).save(tmp_path / 'phone.jpg', exif=exif, quality=95)
  displayed_hole = hole_mask(60, 40, [(10, 10, 8, 8)])
  save_mask(displayed_hole, tmp_path / 'phone_mask.png')
  result = run_main(['--mode=inpaint', f'--input={tmp_path}/phone.jpg',
                     f'--mask={tmp_path}/phone_mask.png', f'--output={tmp_path}/out'], workdir)
  assert result.returncode == 0, result.stdout[-3000:]
  assert Image.open(tmp_path / 'out' / 'phone.png').size == (40, 60)


def test_the_export_repairs_as_the_model_does_with_jax_and_numpy_only(workdir, inpainter,
                                                                       tmp_path):
  exported = tmp_path / 'model.fipx'
  result = run_main(['--mode=export', f'--output={exported}'], workdir)
  assert result.returncode == 0, result.stdout[-3000:]
  assert str(exported) in result.stdout
  loaded = Inpainter.from_export(exported)
  rng = np.random.default_rng(7)
  windows = rng.integers(0, 256, (2, 32, 32, 3), np.uint8)
  holes = rng.random((2, 32, 32)) < 0.3
  np.testing.assert_allclose(loaded._model_predict(windows, holes),  # pylint: disable=protected-access
                             inpainter._model_predict(windows, holes), atol=1e-5)  # pylint: disable=protected-access
  image, hole = photo(50, 70, 9), hole_mask(50, 70, [(20, 20, 10, 10)])
  np.testing.assert_array_equal(loaded.inpaint(image, hole), inpainter.inpaint(image, hole))
  code = ('import sys, numpy as np; from flax_inpaint import Inpainter; '
          f'p = Inpainter.from_export("{exported}"); '
          'p.inpaint(np.zeros((40, 40, 3), np.uint8), np.eye(40, dtype=bool)); '
          'print(sorted({m.split(".")[0] for m in sys.modules} & '
          '{"flax", "tensorflow", "optax", "orbax", "clu", "ml_collections"}))')
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == '[]'


def test_a_bad_export_file_is_one_line(workdir, tmp_path):
  (tmp_path / 'bad.fipx').write_bytes(b'not a zip')
  from flax_inpaint import exported  # pylint: disable=g-import-not-at-top
  with pytest.raises(exported.ExportError, match='not a readable flax_inpaint export'):
    Inpainter.from_export(tmp_path / 'bad.fipx')
