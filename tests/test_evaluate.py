"""Metrics against closed forms and scikit-image; reproducible eval; baselines;
inpainting users' files of any size."""

import json

import jax
import numpy as np
from PIL import Image
import pytest

from flax_inpaint import evaluate
from flax_inpaint import inpaint
from flax_inpaint import metrics
from flax_inpaint import sharding
from flax_inpaint import train


def test_psnr_closed_forms():
  a = np.full((8, 8, 3), 0.5)
  assert metrics.psnr(a, a + 0.1) == pytest.approx(20.0)  # 10 log10(1 / 0.01)
  assert metrics.psnr(a, a + 0.01) == pytest.approx(40.0)
  assert metrics.psnr(a, a) == float('inf')
  mask = np.zeros((8, 8, 1))
  mask[:2] = 1
  b = a.copy()
  b[:2] += 0.1  # Error only inside the hole.
  assert metrics.psnr(b, a, mask) == pytest.approx(20.0)
  assert metrics.psnr(b, a) == pytest.approx(10 * np.log10(1 / (0.01 / 4)))
  assert metrics.mae(b, a, mask) == pytest.approx(0.1)
  assert metrics.mae(b, a) == pytest.approx(0.025)


def test_ssim_equals_scikit_image():
  from skimage.metrics import structural_similarity  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  for _ in range(3):
    a = rng.random((48, 40, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ours = metrics.ssim(a, b)
    reference = structural_similarity(a, b, channel_axis=-1, data_range=1.0)
    assert abs(ours - reference) <= 1e-4
  assert metrics.ssim(a, a) == pytest.approx(1.0)


def test_eval_masks_and_manifest_identical_across_runs():
  images = np.random.default_rng(1).integers(0, 256, (5, 64, 64, 3), np.uint8)
  runs = [evaluate.eval_masks(5, 64, 64, seed=3, num_patches=4, patch_size=8)
          for _ in range(2)]
  np.testing.assert_array_equal(runs[0], runs[1])
  manifests = [evaluate.manifest(images, m) for m in runs]
  assert manifests[0] == manifests[1]
  other = evaluate.manifest(images, evaluate.eval_masks(5, 64, 64, seed=4, num_patches=4,
                                                       patch_size=8))
  assert other['set_sha256'] != manifests[0]['set_sha256']


def test_every_baseline_row_and_outputs(tmp_path):
  rng = np.random.default_rng(2)
  images = rng.integers(0, 256, (3, 32, 32, 3), np.uint8)
  hole_masks = evaluate.eval_masks(3, 32, 32, seed=0, num_patches=2, patch_size=8)
  results, outputs = evaluate.evaluate_methods(images, hole_masks,
                                               evaluate.baseline_repairers())
  assert set(results) == {'telea', 'ns', 'mean_fill', 'masked'}
  originals = images / 255.0
  for name, repaired in outputs.items():
    outside = hole_masks[..., 0] == 0
    np.testing.assert_allclose(repaired[outside], originals[outside], atol=1e-6)
  assert results['masked']['hole_mae'] == pytest.approx(
      np.mean([metrics.mae(np.zeros_like(o), o, h) for o, h in zip(originals, hole_masks)]))
  assert results['telea']['hole_psnr'] > results['masked']['hole_psnr']
  evaluate.write_outputs(tmp_path, results, outputs, images, hole_masks,
                         evaluate.manifest(images, hole_masks))
  assert json.loads((tmp_path / 'metrics.json').read_text())['_meta']['num_images'] == 3
  assert 'mean_fill' in (tmp_path / 'report.md').read_text()
  assert (tmp_path / 'grid_00.png').exists()


@pytest.fixture(scope='module')
def trained_workdir(tmp_path_factory):
  """A real checkpoint of the tiny model (2 steps of configs/test.py)."""
  from configs import test  # pylint: disable=g-import-not-at-top
  config = test.get_config()
  config.train.num_steps = 2
  workdir = tmp_path_factory.mktemp('model')
  rng = np.random.default_rng(0)
  batches = (rng.integers(0, 256, (4, 32, 32, 3), np.uint8) for _ in range(100))
  vgg_params, loss_config = train.load_vgg_params(config.loss)
  train.run_loop(config, workdir, mesh=sharding.make_mesh(), train_batches=batches,
                 writer=train.LogOnlyWriter(), vgg_params=vgg_params, loss_config=loss_config)
  return config, workdir


def test_weights_restore_whatever_the_optimizer_config(trained_workdir):
  from flax_inpaint import checkpointing, models, steps  # pylint: disable=g-import-not-at-top
  from flax_inpaint import run_eval  # pylint: disable=g-import-not-at-top
  config, workdir = trained_workdir
  model = models.create_model(config.model)
  tx = steps.make_optimizer(config.train)
  full = checkpointing.restore(
      checkpointing.make_manager(workdir, read_only=True),
      steps.abstract_train_state(model, tx, 32, 0, sharding.make_mesh()))
  other = config.copy_and_resolve_references()
  other.train.warmup_steps, other.train.grad_clip = 5, 1.0  # A different opt_state tree.
  _, params, _, step = run_eval.restore_model(other, workdir)
  assert step == 2
  for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_inpaint_any_size_keeps_valid_pixels_exactly(trained_workdir, tmp_path):
  config, workdir = trained_workdir
  rng = np.random.default_rng(3)
  image = rng.integers(0, 256, (217, 301, 3), np.uint8)  # 301 wide, 217 high.
  hole = np.zeros((217, 301), np.uint8)
  hole[50:90, 100:160] = 255
  hole[200:217, 290:301] = 1  # A hole at the border, and a non-255 non-zero value.
  (tmp_path / 'in').mkdir()
  (tmp_path / 'masks').mkdir()
  Image.fromarray(image).save(tmp_path / 'in' / 'photo.png')
  Image.fromarray(hole).save(tmp_path / 'masks' / 'photo.png')
  written = inpaint.run(config, workdir, tmp_path / 'in', tmp_path / 'masks', tmp_path / 'out')
  assert [p.name for p in written] == ['photo.png']
  out = np.asarray(Image.open(tmp_path / 'out' / 'photo.png'))
  assert out.shape == (217, 301, 3)
  valid = hole == 0
  np.testing.assert_array_equal(out[valid], image[valid])
  assert not np.array_equal(out[~valid], image[~valid])


def test_inpaint_alpha_mask_empty_mask_and_errors(trained_workdir, tmp_path):
  config, workdir = trained_workdir
  rng = np.random.default_rng(4)
  rgba = rng.integers(0, 256, (40, 50, 4), np.uint8)
  rgba[..., 3] = 255
  rgba[10:20, 10:20, 3] = 0  # Transparent = hole.
  Image.fromarray(rgba, 'RGBA').save(tmp_path / 'alpha.png')
  inpaint.run(config, workdir, tmp_path / 'alpha.png', None, tmp_path / 'out')
  out = np.asarray(Image.open(tmp_path / 'out' / 'alpha.png'))
  np.testing.assert_array_equal(out[:10], rgba[:10, :, :3])

  rgb = rng.integers(0, 256, (40, 50, 3), np.uint8)
  Image.fromarray(rgb).save(tmp_path / 'plain.png')
  Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / 'empty_mask.png')
  inpaint.run(config, workdir, tmp_path / 'plain.png', tmp_path / 'empty_mask.png',
              tmp_path / 'out2')
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'out2' / 'plain.png')), rgb)

  Image.fromarray(np.zeros((41, 50), np.uint8)).save(tmp_path / 'wrong_size.png')
  with pytest.raises(inpaint.InpaintError, match='must match'):
    inpaint.run(config, workdir, tmp_path / 'plain.png', tmp_path / 'wrong_size.png',
                tmp_path / 'out3')
  with pytest.raises(FileNotFoundError, match='No checkpoint'):
    inpaint.run(config, tmp_path / 'no_model', tmp_path / 'plain.png',
                tmp_path / 'empty_mask.png', tmp_path / 'out4')
