"""Released models: the format's round trip, the shipped release, init_from a release."""

import json
import subprocess
import sys

import jax
import numpy as np
from PIL import Image
from PIL import ImageDraw
import pytest

from conftest import load_config
from conftest import run_main
from conftest import train_tiny
from flax_inpaint import Inpainter
from flax_inpaint import errors
from flax_inpaint.config import config_lib
from flax_inpaint.data import images as images_lib
from flax_inpaint.data import masks
from flax_inpaint.data import user_files
from flax_inpaint.evaluation import metrics
from flax_inpaint.train import setup
from flax_inpaint.weights import pretrained


def scratch(size=64, seed=0):
  rng = np.random.default_rng(seed)
  image = rng.integers(0, 256, (size, size, 3), np.uint8)
  hole = np.zeros((size, size), bool)
  hole[20:30, 10:40] = True
  return image, hole


@pytest.mark.parametrize('storage', ['float32', 'float16'])
def test_a_written_release_repairs_like_its_workdir(tiny_run, tmp_path, storage):
  trained = setup.load_trained(tiny_run)
  variables, step = trained.variables, trained.step
  pretrained.write(
      jax.device_get(variables['params']),
      step,
      config_lib.read_config_json(tiny_run),
      tmp_path / 'tiny',
      storage,
  )
  image, hole = scratch()
  from_release = Inpainter.from_pretrained(tmp_path / 'tiny').inpaint(image, hole)
  from_workdir = Inpainter.from_workdir(tiny_run).inpaint(image, hole)
  if storage == 'float32':
    np.testing.assert_array_equal(from_release, from_workdir)
  else:  # Params rounded to float16: the uint8 repair moves by a level at most.
    assert np.abs(from_release.astype(int) - from_workdir.astype(int)).max() <= 1
  stored = np.load(tmp_path / 'tiny' / pretrained.PARAMS_FILE)
  assert {stored[k].dtype for k in stored.files if k != '__step__'} == {np.dtype(storage)}
  assert pretrained.read_params(tmp_path / 'tiny')[1] == step == 2
  assert Inpainter.from_pretrained(tmp_path / 'tiny').description == 'tiny, 2 steps'


def test_an_unknown_release_is_one_line():
  with pytest.raises(
      errors.ConfigError,
      match=r'^--model=nope: no released model of that '
      r'name \(released: .*\); pass one of them or a folder holding params.npz$',
  ):
    Inpainter.from_pretrained('nope')


SHIPPED = pytest.mark.skipif(
    not pretrained.names(),
    reason='no release is shipped in this version',
)


@SHIPPED
def test_the_shipped_release_loads_and_repairs_in_a_fresh_process():
  assert pretrained.DEFAULT_RELEASE in pretrained.names()
  code = """
import numpy as np
from flax_inpaint import Inpainter
image = np.full((300, 400, 3), 90, np.uint8)
image[:, 200:] = 200
hole = np.zeros((300, 400), bool)
hole[100:140, 180:220] = True
repaired = Inpainter.from_pretrained().inpaint(image, hole)
assert (repaired[~hole] == image[~hole]).all()
print(repaired[hole].reshape(40, 40, 3)[:, 0].mean(), repaired[hole].reshape(40, 40, 3)[:, -1].mean())
"""
  out = subprocess.run(
      [sys.executable, '-c', code],
      capture_output=True,
      text=True,
      cwd='/',
      timeout=300,
      check=False,
  )
  assert out.returncode == 0, out.stderr[-2000:]
  left, right = (float(v) for v in out.stdout.split())
  # The hole straddles a dark/bright edge: its left side comes back dark, its right bright.
  assert left < 120 < 170 < right


@SHIPPED
def test_the_shipped_release_is_small_and_its_card_matches_its_config():
  directory = pretrained.release_dir(pretrained.DEFAULT_RELEASE)
  assert (directory / pretrained.PARAMS_FILE).stat().st_size < 20 * 2**20
  config = pretrained.read_config(directory)
  card = (directory / pretrained.CARD_FILE).read_text()
  _, step = pretrained.read_params(directory)
  assert f'step {step:,}' in card or f'{step:,} steps' in card
  assert config.model.coarse_fill == 'pushpull'


@SHIPPED
def test_the_release_names_itself_with_all_its_steps():
  assert Inpainter.from_pretrained().description == 'album-covers, 9,200 steps'


@SHIPPED
def test_init_from_the_release_starts_from_its_params_even_with_attention(tmp_path):
  """A run starts from the release's params (lr 1e-30: they stay); one that adds contextual
  attention too, its gate at zero: the release's function exactly, until training opens it."""
  config = load_config('release')
  config.data.source, config.data.crop_size = 'samples', None
  config.data.image_size, config.masks.patch_size = 64, 8
  config.train.batch_size, config.train.num_steps, config.train.lr = 4, 1, 1e-30
  config.train.ema_decay, config.train.warmup_steps = 0.0, 0
  config.train.init_from = pretrained.DEFAULT_RELEASE
  config.model.attention = 'contextual'
  config.compilation_cache_dir = ''
  state = train_tiny(config, tmp_path / 'attention')
  released, _ = pretrained.read_params(pretrained.release_dir(pretrained.DEFAULT_RELEASE))
  for key, value in released.items():
    for a, b in zip(jax.tree.leaves(value), jax.tree.leaves(state.params[key])):
      np.testing.assert_allclose(np.asarray(b), a, rtol=1e-6, atol=1e-20)
  assert set(state.params) - set(released) == {'attention_gate', 'attention_scale'}
  assert float(np.abs(state.params['attention_gate']['kernel']).max()) < 1e-20
  saved = json.loads((tmp_path / 'attention' / 'config.json').read_text())
  assert saved['train']['init_from'] == pretrained.DEFAULT_RELEASE
  tuned = Inpainter.from_workdir(tmp_path / 'attention')
  image, hole = scratch(96)
  np.testing.assert_array_equal(
      tuned.inpaint(image, hole), Inpainter.from_pretrained().inpaint(image, hole)
  )
  # The other way is refused: a model without attention cannot drop the run's.
  config.model.attention = 'none'
  with pytest.raises(errors.ConfigError, match="config.model.attention='none' differs from 'con"):
    config_lib.check_matches_run(config, tmp_path / 'attention', adding=True)


def test_without_a_shipped_release_the_cli_needs_a_workdir_in_one_line():
  if pretrained.names():
    pytest.skip('a release is shipped')
  result = run_main(['--mode=serve'])
  assert result.returncode == 2
  assert result.stdout.strip().splitlines()[-1] == (
      'error: --mode=serve needs --workdir=DIR (a training run): no released model is shipped '
      'in this version'
  )


def test_init_from_something_that_is_neither_is_one_line_before_training(tmp_path):
  result = run_main(
      ['--config=configs/test.py', '--config.train.init_from=no-such-model'], tmp_path / 'run'
  )
  assert result.returncode == 2, result.stdout[-2000:]
  assert result.stdout.strip().splitlines()[-1] == (
      'error: --config.train.init_from=no-such-model: no released model of that name (released: '
      f'{", ".join(pretrained.names()) or "none"}); pass '
      'one of them or a folder holding params.npz'
  )
  assert not (tmp_path / 'run' / 'checkpoints').exists()


@SHIPPED
def test_the_cli_without_a_workdir_repairs_with_the_release(tmp_path):
  from PIL import Image

  image, hole = scratch(96)
  Image.fromarray(image).save(tmp_path / 'cover.png')
  Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / 'mask.png')
  result = run_main(
      [
          '--mode=inpaint',
          f'--input={tmp_path / "cover.png"}',
          f'--mask={tmp_path / "mask.png"}',
          f'--output={tmp_path / "out"}',
      ]
  )
  assert result.returncode == 0, result.stdout[-2000:]
  repaired = np.asarray(Image.open(tmp_path / 'out' / 'cover.png'))
  expected = Inpainter.from_pretrained().inpaint(image, hole)
  np.testing.assert_array_equal(repaired, expected)


@SHIPPED
def test_the_example_command_repairs_the_shipped_photo(tmp_path):
  from PIL import Image

  from flax_inpaint.data import user_files

  result = run_main(['--mode=inpaint', '--example', f'--output={tmp_path / "repaired"}'])
  assert result.returncode == 0, result.stdout[-2000:]
  written = tmp_path / 'repaired' / 'coffee.png'
  assert result.stdout.strip().splitlines()[-1] == str(written)
  photo = np.asarray(Image.open(user_files.EXAMPLE_IMAGE))
  hole = np.asarray(Image.open(user_files.EXAMPLE_MASK)) >= user_files.HOLE_THRESHOLD
  repaired = np.asarray(Image.open(written))
  np.testing.assert_array_equal(repaired, Inpainter.from_pretrained().inpaint(photo, hole))
  np.testing.assert_array_equal(repaired[~hole], photo[~hole])
  assert 0.01 < hole.mean() < 0.1
  both = run_main(['--mode=inpaint', '--example', '--input=x.png', f'--output={tmp_path}'])
  assert both.returncode == 2
  assert both.stdout.strip().splitlines()[-1] == (
      'error: --example repairs the example photo under its own mask: give it without '
      '--input and --mask'
  )


@SHIPPED
def test_model_and_workdir_together_is_one_line(tmp_path):
  result = run_main(['--mode=serve', '--model=album-covers'], tmp_path)
  assert result.returncode == 2
  assert result.stdout.strip().splitlines()[-1] == (
      f'error: --model=album-covers and --workdir={tmp_path}: give one of them (--workdir: a '
      'training run; --model: a released model)'
  )


@SHIPPED
def test_eval_of_the_release_needs_an_output_folder():
  result = run_main(['--mode=eval', '--model=album-covers'])
  assert result.returncode == 2
  assert result.stdout.strip().splitlines()[-1] == (
      'error: --mode=eval of the released model needs --output=DIR for its tables (or '
      '--workdir=DIR to evaluate a training run)'
  )


@SHIPPED
def test_the_release_exports_and_repairs_as_in_process(tmp_path):
  """A push-pull model's export (its fill computed by the loader) repairs a large stroke, a
  box and a small square as the release does in-process, windows of several sizes."""
  exported = tmp_path / 'release.fipx'
  result = run_main(['--mode=export', f'--output={exported}'])
  assert result.returncode == 0, result.stdout[-3000:]
  loaded, inpainter = Inpainter.from_export(exported), Inpainter.from_pretrained()
  assert loaded.options == inpainter.options
  # The example photo tiled 2 x 2 (800 x 1200), holes far apart: three windows.
  image = np.tile(np.asarray(Image.open(user_files.EXAMPLE_IMAGE).convert('RGB')), (2, 2, 1))
  height, width = image.shape[:2]
  canvas = Image.new('L', (width, height))
  draw = ImageDraw.Draw(canvas)
  draw.line([(40, 60), (250, 200), (380, 120)], fill=255, width=40)  # A 40-px stroke.
  draw.rectangle((900, 560, 1049, 679), fill=255)  # A 150 x 120 box.
  draw.rectangle((60, 700, 67, 707), fill=255)  # An 8 x 8 square.
  hole = np.asarray(canvas) > 0
  repaired, reference = loaded.inpaint(image, hole), inpainter.inpaint(image, hole)
  np.testing.assert_array_equal(repaired[~hole], image[~hole])
  assert np.abs(repaired.astype(int) - reference.astype(int)).max() <= 1
  assert len({shape[1:3] for shape in loaded.program_shapes}) == 3, loaded.program_shapes
  assert loaded.program_shapes == inpainter.program_shapes


def test_the_release_recipe_is_evaluated_on_the_default_masks():
  """Eval draws its masks from config.masks: the release keeps the defaults' counts and
  sizes (only the kind differs), so its tables compare with every other table's."""
  release, default = load_config('release'), load_config('default')
  assert release.masks.kind == 'mixed'
  differing = [f for f in default.masks if f != 'kind' and release.masks[f] != default.masks[f]]
  assert differing == []


@SHIPPED
def test_the_release_beats_the_push_pull_fill_it_corrects_on_photos():
  """scikit-image's photos, which the release never saw: better than its own starting fill
  inside the holes, and every pixel outside them kept."""
  inpainter = Inpainter.from_pretrained()
  config = pretrained.read_config(pretrained.release_dir())
  photos = images_lib.sample_photos(128)
  ours, fill = [], []
  for index, photo in enumerate(photos):
    hole = masks.eval_mask(0, index, 128, 128, config.masks, 'squares')[..., 0] > 0.5
    repaired = inpainter.inpaint(photo, hole)
    pushpull = inpainter.repair_array(photo, hole, 'pushpull')
    np.testing.assert_array_equal(repaired[~hole], photo[~hole])
    original = photo.astype(np.float32) / 255
    weight = hole[..., None].astype(np.float32)
    ours.append(metrics.psnr(repaired.astype(np.float32) / 255, original, weight))
    fill.append(metrics.psnr(pushpull.astype(np.float32) / 255, original, weight))
  assert np.mean(ours) > np.mean(fill) + 0.2, (np.mean(ours), np.mean(fill))
