"""masks.kind='files': mask images from a folder the test writes (L-shaped holes, a
threshold-edge mask, a mask at twice the image size, a corrupt file), flipped and rotated
by the input pipeline and used by the train step in place of drawn masks."""

import pathlib

import jax
import numpy as np
from PIL import Image
import pytest

from conftest import build
from conftest import load_config
from conftest import run_main
from flax_inpaint.data import images as images_lib
from flax_inpaint.train import loop
from flax_inpaint.train import setup
from flax_inpaint.train import sharding
from flax_inpaint.train import steps

tf = pytest.importorskip('tensorflow')
from flax_inpaint.data import pipeline

SIZE = 32  # configs/test.py's data.image_size.


def l_shape(top, left, height, width, thickness):
  """bool [SIZE, SIZE]: an L (a vertical bar and a foot to its right): no flip or quarter
  turn maps it onto itself, so each of its 8 orientations is a different mask."""
  hole = np.zeros((SIZE, SIZE), bool)
  hole[top : top + height, left : left + thickness] = True
  hole[top + height - thickness : top + height, left : left + width] = True
  return hole


def write_mask_folder(root: pathlib.Path):
  """Mask files, nested, plus one corrupt file. Returns (the holes each good file holds at
  SIZE x SIZE, the corrupt file's path)."""
  corner = l_shape(1, 1, 12, 8, 3)  # By one corner: flips and turns move it to another.
  edge = l_shape(10, 20, 9, 6, 2)
  small = l_shape(4, 6, 6, 10, 2)
  (root / 'nested' / 'deep').mkdir(parents=True)
  Image.fromarray(np.where(corner, 255, 0).astype(np.uint8)).save(root / 'a_corner.png')
  # The threshold's edge: 128 is a hole, 127 is not.
  Image.fromarray(np.where(edge, 128, 127).astype(np.uint8)).save(
      root / 'nested' / 'deep' / 'b_edge.png'
  )
  # Twice the image size, each pixel a 2x2 block: nearest-neighbour resizing is exact.
  doubled = np.repeat(np.repeat(np.where(small, 255, 0), 2, 0), 2, 1).astype(np.uint8)
  Image.fromarray(doubled).save(root / 'c_doubled.png')
  corrupt = root / 'nested' / 'corrupt.png'
  corrupt.write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
  return [corner, edge, small], corrupt


def orientations(hole):
  """The 8 flips and quarter turns of a square mask: k turns of it, and of its mirror."""
  return [np.rot90(h, k) for h in (hole, np.fliplr(hole)) for k in range(4)]


def files_config(mask_dir):
  config = load_config('test')
  config.masks.kind = 'files'
  config.masks.dir = str(mask_dir)
  return config


def take_batches(config, count, mask_skipped=None):
  """`count` batches of a fresh iterator, as a list. The iterator dies with this call: a
  tf.data iterator with Python decoders left alive at exit can hang the interpreter."""
  batches = pipeline.train_batches(config, mask_skipped=mask_skipped)
  return [next(batches) for _ in range(count)]


def test_batches_are_flipped_and_rotated_file_masks(tmp_path):
  sources, corrupt = write_mask_folder(tmp_path / 'masks')
  config = files_config(tmp_path / 'masks')
  skipped = images_lib.SkipCounter('masks.dir')
  batches = take_batches(config, 20, mask_skipped=skipped)  # 80 draws, ~27 epochs.
  for images, holes in batches:
    assert images.shape == (4, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert holes.shape == (4, SIZE, SIZE, 1) and holes.dtype == np.uint8
  holes = np.concatenate([h[..., 0] for _, h in batches])
  assert set(np.unique(holes)) == {0, 1}
  seen = set()
  for hole in holes:
    matches = [
        (s, o)
        for s, source in enumerate(sources)
        for o, oriented in enumerate(orientations(source))
        if np.array_equal(hole, oriented)
    ]
    assert len(matches) == 1, 'not a flip or quarter turn of a file mask'
    seen.add(matches[0])
  # Each source and each orientation turns up (80 draws of a uniform 8: P(miss) < 0.2%).
  assert {s for s, _ in seen} == {0, 1, 2}
  assert {o for _, o in seen} == set(range(8))
  # The corrupt file was met in every epoch but is counted once.
  assert skipped.count == 1 and skipped.names == [str(corrupt)]
  # The stream is a pure function of train.seed: a second iterator repeats it.
  again = take_batches(config, 3)
  for (_, first), (_, second) in zip(batches, again):
    np.testing.assert_array_equal(first, second)


def test_fixed_mode_repeats_the_first_batch_of_holes(tmp_path):
  write_mask_folder(tmp_path / 'masks')
  config = files_config(tmp_path / 'masks')
  config.masks.fixed = True
  holes = [h for _, h in take_batches(config, 3)]
  assert len({mask.tobytes() for mask in holes[0]}) > 1  # Not one mask four times.
  for later in holes[1:]:
    np.testing.assert_array_equal(later, holes[0])


@pytest.mark.filterwarnings('ignore:Data has no positive values')  # The l1 panel: all 0.
def test_training_uses_the_file_masks(tmp_path):
  """Masks without a hole and only hole-dependent loss terms: the hole L1 is exactly 0 and
  the loss is the images' own TV (the composite is the image). Drawn masks have holes:
  a hole L1 above 0 and another loss."""
  folder = tmp_path / 'masks'
  folder.mkdir()
  for i in range(3):
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(folder / f'none_{i}.png')
  config = files_config(folder)
  config.loss.valid_weight = 0.0
  config.loss.perceptual_weight = 0.0
  config.train.num_steps = 3
  config.train.log_every = 1
  config.train.checkpoint_every = 3
  parts = build(config)
  state = loop.run_loop(
      parts,
      setup.initial_state(parts, tmp_path / 'run'),
      tmp_path / 'run',
      train_batches=iter(take_batches(parts.config, 3)),
      writer=loop.LogOnlyWriter(),
  )
  assert int(state.step) == 3
  # configs/test.py reads the 8 sample photos in order, 4 a step (flips keep their TV).
  photos = images_lib.sample_photos(SIZE).astype(np.float64) / 255.0
  history = loop.read_history(tmp_path / 'run')
  assert [row['step'] for row in history] == [1, 2, 3]
  for row, first in zip(history, (0, 4, 0)):
    batch = photos[first : first + 4]
    tv = np.abs(np.diff(batch, axis=1)).mean() + np.abs(np.diff(batch, axis=2)).mean()
    assert row['train/l1'] == 0.0
    np.testing.assert_allclose(row['train/loss'], config.loss.tv_weight * tv, rtol=1e-5)


def test_the_step_needs_the_holes_of_kind_files(tmp_path):
  parts = build(files_config(tmp_path))
  state = steps.abstract_train_state(parts.model, parts.tx, SIZE, 0, parts.mesh)
  train_step = steps.make_train_step(parts.model, parts.tx, parts.config, parts.mesh)
  images = jax.ShapeDtypeStruct(
      (4, SIZE, SIZE, 3), np.uint8, sharding=sharding.batch_sharding(parts.mesh)
  )
  with pytest.raises(
      ValueError,
      match="masks.kind='files': the train step needs the batch's "
      r'hole masks \(the input pipeline yields \(images, holes\) batches\)',
  ):
    train_step.trace(state, images, parts.vgg_params, jax.random.key(0))


@pytest.mark.parametrize('contents', ['empty', 'all_bad', 'missing'])
def test_a_folder_without_a_decodable_mask_is_one_line(tmp_path, contents):
  folder = tmp_path / 'masks'
  if contents != 'missing':
    folder.mkdir()
  if contents == 'all_bad':
    (folder / 'a.png').write_bytes(b'')
    (folder / 'b.txt').write_text('not a mask')
  config = files_config(folder)
  skipped = images_lib.SkipCounter('masks.dir')
  if contents == 'missing':
    line = (
        f'config.masks.dir={folder}: no such folder: pass a folder of mask images '
        '(white = hole) as --config.masks.dir'
    )
  else:
    count = 2 if contents == 'all_bad' else 0
    line = (
        f'config.masks.dir={folder}: no decodable mask image among its {count} file(s): '
        'pass a folder of mask images (white = hole)'
    )
  with pytest.raises(FileNotFoundError) as error:
    pipeline.train_batches(config, mask_skipped=skipped)
  assert str(error.value) == line
  assert skipped.count == (2 if contents == 'all_bad' else 0)


def test_cli_all_bad_mask_folder_is_one_line_and_exit_2(tmp_path):
  folder = tmp_path / 'masks'
  folder.mkdir()
  (folder / 'a.png').write_bytes(b'junk')
  result = run_main(
      ['--config=configs/test.py', '--config.masks.kind=files', f'--config.masks.dir={folder}'],
      tmp_path / 'run',
  )
  assert result.returncode == 2, result.stdout[-3000:]
  assert [l for l in result.stdout.splitlines() if l.startswith('error:')] == [
      f'error: config.masks.dir={folder}: no decodable mask image among its 1 file(s): pass a '
      'folder of mask images (white = hole)'
  ]
  assert 'Traceback' not in result.stdout
  assert not (tmp_path / 'run' / 'checkpoints').exists()
