"""Repairing users' files: the CLI, the Python API, crops at any size, the exported model."""

import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from conftest import ROOT
from conftest import run_main
from flax_inpaint import Inpainter
from flax_inpaint.config import config_lib

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
    hole[y : y + h, x : x + w] = True
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
  out = inpainter.inpaint(
      grey, Image.fromarray(hole_mask(64, 80, [(5, 5, 9, 9)]).astype(np.uint8) * 255)
  )
  assert isinstance(out, Image.Image) and out.mode == 'L' and out.size == (80, 64)
  assert np.array_equal(inpainter.inpaint(image, np.zeros_like(hole)), image)


def test_crops_run_the_same_window_sizes_for_any_image_size(workdir):
  fresh = Inpainter.from_workdir(workdir)
  for height, width in [(40, 50), (64, 64), (100, 37), (128, 96), (200, 200), (33, 33)]:
    fresh.inpaint(photo(height, width), hole_mask(height, width, [(3, 4, 6, 7)]))
  # configs/test.py: buckets 24, 32, 64, 128 at 32, margin 8: every 6 x 7 hole gets the
  # smallest window, 24 x 24, but in the 37 px wide image the 22 px hole window is 24 wide.
  assert fresh.program_shapes == {(1, 24, 24, 3)}


def test_cli_repairs_a_folder_names_every_output_and_counts_failures(workdir, inpainter, tmp_path):
  images, masks, out = tmp_path / 'in', tmp_path / 'masks', tmp_path / 'out'
  images.mkdir()
  masks.mkdir()
  rgb, grey, rgba = photo(48, 64, 1), photo(40, 40, 2, channels=1), photo(36, 52, 3, 4)
  Image.fromarray(rgb).save(images / 'a.png')
  Image.fromarray(rgb).save(images / 'a.jpg', quality=95)  # Same stem: both kept.
  Image.fromarray(grey, 'L').save(images / 'grey.png')
  Image.fromarray(rgba, 'RGBA').save(images / 'alpha.png')
  (images / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 40)
  holes = {
      'a': hole_mask(48, 64, [(10, 10, 12, 12)]),
      'grey': hole_mask(40, 40, [(5, 5, 8, 8)]),
      'alpha': hole_mask(36, 52, [(20, 30, 6, 9)]),
      'broken': hole_mask(8, 8, []),
  }
  for stem, hole in holes.items():
    save_mask(hole, masks / f'{stem}.png')
  result = run_main(
      ['--mode=inpaint', f'--input={images}', f'--mask={masks}', f'--output={out}'], workdir
  )
  assert result.returncode == 2, result.stdout[-3000:]
  written = sorted(line for line in result.stdout.splitlines() if line.startswith(str(out)))
  assert written == [str(out / n) for n in ('a.jpg.png', 'a.png.png', 'alpha.png', 'grey.png')]
  errors = error_lines(result.stdout)
  assert len(errors) == 2 and errors[0].startswith(f'error: {images}/broken.png')
  assert errors[1] == (
      'error: 1 of 5 image(s) could not be repaired (see above); the others ' 'were written'
  )
  # The CLI and the API give the same pixels.
  np.testing.assert_array_equal(
      np.asarray(Image.open(out / 'a.png.png')), inpainter.inpaint(rgb, holes['a'])
  )
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
  args = [
      '--mode=inpaint',
      f'--input={tmp_path}/x.png',
      f'--mask={tmp_path}/x_mask.png',
      f'--output={tmp_path}',
  ]
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
  result = run_main(
      [
          '--mode=inpaint',
          f'--input={tmp_path}/phone.jpg',
          f'--mask={tmp_path}/phone_mask.png',
          f'--output={tmp_path}/out',
      ],
      workdir,
  )
  assert result.returncode == 0, result.stdout[-3000:]
  assert Image.open(tmp_path / 'out' / 'phone.png').size == (40, 60)


def test_the_export_repairs_as_the_model_does_with_jax_and_numpy_only(workdir, inpainter, tmp_path):
  exported = tmp_path / 'model.fipx'
  result = run_main(['--mode=export', f'--output={exported}'], workdir)
  assert result.returncode == 0, result.stdout[-3000:]
  assert str(exported) in result.stdout
  loaded = Inpainter.from_export(exported)
  rng = np.random.default_rng(7)
  windows = rng.integers(0, 256, (2, 32, 32, 3), np.uint8)
  holes = rng.random((2, 32, 32)) < 0.3
  np.testing.assert_allclose(
      loaded._model_predict(windows, holes), inpainter._model_predict(windows, holes), atol=1e-5
  )
  image, hole = photo(50, 70, 9), hole_mask(50, 70, [(20, 20, 10, 10)])
  np.testing.assert_array_equal(loaded.inpaint(image, hole), inpainter.inpaint(image, hole))
  code = (
      'import sys, numpy as np; from flax_inpaint import Inpainter; '
      f'p = Inpainter.from_export("{exported}"); '
      'p.inpaint(np.zeros((40, 40, 3), np.uint8), np.eye(40, dtype=bool)); '
      'print(sorted({m.split(".")[0] for m in sys.modules} & '
      '{"flax", "tensorflow", "optax", "orbax", "clu", "ml_collections"}))'
  )
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  out = subprocess.run(
      [sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=300
  )
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == '[]'


def test_a_bad_export_file_is_one_line(workdir, tmp_path):
  (tmp_path / 'bad.fipx').write_bytes(b'not a zip')
  from flax_inpaint import errors

  with pytest.raises(errors.ExportError, match='not a readable flax_inpaint export'):
    Inpainter.from_export(tmp_path / 'bad.fipx')


def test_a_second_run_into_the_input_folder_skips_its_own_results(workdir, tmp_path):
  Image.fromarray(photo(40, 48)).save(tmp_path / 'astro.jpg', quality=95)
  save_mask(hole_mask(40, 48, [(8, 8, 10, 10)]), tmp_path / 'mask.png')
  folder = tmp_path / 'photos'
  folder.mkdir()
  (tmp_path / 'astro.jpg').rename(folder / 'astro.jpg')
  args = [
      '--mode=inpaint',
      f'--input={folder}',
      f'--mask={tmp_path}/mask.png',
      f'--output={folder}',
  ]
  first = run_main(args, workdir)
  assert first.returncode == 0, first.stdout[-3000:]
  assert [l for l in first.stdout.splitlines() if l.startswith('/')] == [str(folder / 'astro.png')]
  written = (folder / 'astro.png').read_bytes()
  # Again: astro.png is the first run's result, not an input, and it was repaired from the
  # same image and mask: nothing to do (--overwrite redoes it).
  second = run_main(args, workdir)
  assert second.returncode == 0, second.stdout[-3000:]
  assert 'Skipping 1 file(s) in' in second.stdout
  assert 'Skipping 1 of 1 image(s): already repaired in' in second.stdout
  assert not [l for l in second.stdout.splitlines() if l.startswith('/')]
  assert (folder / 'astro.png').read_bytes() == written
  third = run_main(args + ['--overwrite'], workdir)
  assert third.returncode == 0, third.stdout[-3000:]
  assert [l for l in third.stdout.splitlines() if l.startswith('/')] == [str(folder / 'astro.png')]
  assert sorted(p.name for p in folder.iterdir()) == [
      '.flax_inpaint_results.json',
      'astro.jpg',
      'astro.png',
  ]
  assert (folder / 'astro.png').read_bytes() == written  # The same repair of astro.jpg.
  # A file the user changes is no longer a result: it is an input again.
  Image.fromarray(photo(40, 48, seed=5)).save(folder / 'astro.png')
  fourth = run_main(args + ['--overwrite'], workdir)
  assert 'Skipping' not in fourth.stdout
  assert sorted(l for l in fourth.stdout.splitlines() if l.startswith('/')) == [
      str(folder / 'astro.jpg.png'),
      str(folder / 'astro.png.png'),
  ]


def test_one_image_that_fails_says_so_without_others(workdir, tmp_path):
  (tmp_path / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 40)
  save_mask(hole_mask(8, 8, [(1, 1, 2, 2)]), tmp_path / 'mask.png')
  result = run_main(
      [
          '--mode=inpaint',
          f'--input={tmp_path}/broken.png',
          f'--mask={tmp_path}/mask.png',
          f'--output={tmp_path}/out',
      ],
      workdir,
  )
  assert result.returncode == 2
  assert error_lines(result.stdout)[1:] == ['error: the image could not be repaired (see above)']


def brush_stroke(height, width, points, radius):
  """A thick polyline through `points` (x, y), as a user's brush paints it."""
  from PIL import ImageDraw

  canvas = Image.new('L', (width, height))
  draw = ImageDraw.Draw(canvas)
  draw.line(points, fill=255, width=2 * radius, joint='curve')
  for x, y in points:
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
  return np.asarray(canvas) > 0


def test_the_export_repairs_large_strokes_as_the_workdir_does(workdir, inpainter, tmp_path):
  exported = tmp_path / 'model.fipx'
  assert run_main(['--mode=export', f'--output={exported}'], workdir).returncode == 0
  loaded = Inpainter.from_export(exported)
  assert loaded.options == inpainter.options and loaded.options.strategy == 'crop'
  image = photo(1024, 1024, seed=11)
  hole = brush_stroke(1024, 1024, [(100, 150), (400, 300), (700, 250), (900, 800)], 30)
  hole |= hole_mask(1024, 1024, [(50, 900, 6, 6), (980, 40, 10, 12)])  # Small ones too.
  repaired = loaded.inpaint(image, hole)
  np.testing.assert_array_equal(repaired, inpainter.inpaint(image, hole))
  # The stroke's window is larger than the largest bucket (128): 'crop' ran it at its own
  # size, a shape the export has no bucket for, besides the small holes' 24 x 24.
  assert (1, 24, 24, 3) in loaded.program_shapes
  assert max(shape[1] * shape[2] for shape in loaded.program_shapes) > 128 * 128


def test_an_export_with_an_overridden_strategy_keeps_it(workdir, tmp_path):
  exported = tmp_path / 'resize.fipx'
  result = run_main(
      ['--mode=export', f'--output={exported}', '--config.inpaint.strategy=resize'], workdir
  )
  assert result.returncode == 0, result.stdout[-3000:]
  loaded = Inpainter.from_export(exported)
  assert loaded.options.strategy == 'resize'
  config = config_lib.read_config_json(workdir)
  config.inpaint.strategy = 'resize'
  image, hole = photo(300, 300, seed=3), hole_mask(300, 300, [(20, 20, 200, 150)])
  np.testing.assert_array_equal(
      loaded.inpaint(image, hole), Inpainter.from_workdir(workdir, config).inpaint(image, hole)
  )
  # The 216 x 166 window, scaled down to the largest bucket (128 x 98), runs at 128 x 112.
  assert loaded.program_shapes == {(1, 128, 112, 3)}


def test_export_never_overwrites_or_creates_folders(workdir, tmp_path):
  target = tmp_path / 'model.fipx'
  target.write_bytes(b'mine')
  result = run_main(['--mode=export', f'--output={target}'], workdir)
  assert result.returncode == 2
  assert error_lines(result.stdout) == [
      f'error: --output={target}: already exists: choose another file, or pass --overwrite '
      'to replace it'
  ]
  assert target.read_bytes() == b'mine'
  missing = tmp_path / 'no' / 'such' / 'model.fipx'
  result = run_main(['--mode=export', f'--output={missing}'], workdir)
  assert result.returncode == 2
  assert error_lines(result.stdout) == [
      f'error: --output={missing}: no such folder {tmp_path}/no/such: create it first'
  ]
  assert not (tmp_path / 'no').exists()
  assert run_main(['--mode=export', f'--output={target}', '--overwrite'], workdir).returncode == 0
  assert Inpainter.from_export(target).step == 2


def test_an_interrupted_batch_resumes_without_repairing_twice(workdir, tmp_path):
  inputs, masks = tmp_path / 'photos', tmp_path / 'masks'
  inputs.mkdir()
  masks.mkdir()
  count = 300  # About 15 ms each with the tiny model: seconds in all, so Ctrl-C lands mid-run.
  for i in range(count):
    Image.fromarray(photo(96, 96, seed=i)).save(inputs / f'img_{i:03d}.png')
    save_mask(hole_mask(96, 96, [(10 + i % 40, 20, 30, 40)]), masks / f'img_{i:03d}.png')
  output = tmp_path / 'out'
  args = ['--mode=inpaint', f'--input={inputs}', f'--mask={masks}', f'--output={output}']
  argv = [sys.executable, str(ROOT / 'main.py')] + args + [f'--workdir={workdir}']
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  process = subprocess.Popen(
      argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )
  first_paths = []
  for line in process.stdout:  # Ctrl-C after the third result.
    first_paths.append(line.strip())
    if len(first_paths) == 3:
      process.send_signal(signal.SIGINT)
      break
  rest, stderr = process.communicate(timeout=120)
  first_paths += [l for l in rest.splitlines() if l.startswith('/')]
  assert process.returncode == 130, stderr[-3000:]
  done = len(first_paths)
  assert 3 <= done < count
  assert stderr.strip().splitlines()[-1] == (
      f'interrupted: {done} of {count} written to {output}; rerun the same command to finish'
  )
  assert 'Traceback' not in stderr
  assert sorted(p.name for p in output.glob('*.png')) == sorted(
      pathlib.Path(p).name for p in first_paths
  )  # Nothing half-written.
  second = run_main(args, workdir)
  assert second.returncode == 0, second.stdout[-3000:]
  assert f'Skipping {done} of {count} image(s): already repaired in {output}' in second.stdout
  second_paths = [l for l in second.stdout.splitlines() if l.startswith('/')]
  assert len(second_paths) == count - done and not set(second_paths) & set(first_paths)
  assert len(list(output.glob('*.png'))) == count


def test_over_max_pixels_and_an_all_hole_mask_are_one_line_each_and_nothing_is_written(
    workdir, tmp_path
):
  for folder in ('photos', 'masks'):
    (tmp_path / folder).mkdir()
  Image.fromarray(photo(40, 50)).save(tmp_path / 'photos' / 'a.png')  # 2,000 pixels.
  save_mask(hole_mask(40, 50, [(8, 8, 10, 10)]), tmp_path / 'masks' / 'a.png')
  Image.fromarray(photo(20, 30)).save(tmp_path / 'photos' / 'b.png')
  save_mask(np.ones((20, 30), bool), tmp_path / 'masks' / 'b.png')  # All hole.
  result = run_main(
      [
          '--mode=inpaint',
          f'--input={tmp_path}/photos',
          f'--mask={tmp_path}/masks',
          f'--output={tmp_path}/out',
          '--max_pixels=1999',
      ],
      workdir,
  )
  assert result.returncode == 2
  assert error_lines(result.stdout) == [
      f'error: {tmp_path}/photos/a.png: 50x40 = 2,000 pixels is over the limit of 1,999: pass '
      '--max_pixels=2000 to repair it anyway',
      f'error: {tmp_path}/masks/b.png: every pixel of {tmp_path}/photos/b.png is a hole: no '
      'pixel is left to repair from; holes are white, paint only what to repair',
      'error: none of the 2 images could be repaired (see above)',
  ]
  assert not list((tmp_path / 'out').glob('*.png'))
