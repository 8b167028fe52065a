"""Metrics against closed forms and scikit-image; reproducible eval by mask kind and hole
area; baselines; restoring weights for inference without the optimizer."""

import json

import jax
import numpy as np
import pytest

from conftest import build
from conftest import train_tiny
from flax_inpaint import errors
from flax_inpaint.evaluation import baselines
from flax_inpaint.evaluation import evaluate
from flax_inpaint.evaluation import metrics
from flax_inpaint.modes import eval as eval_mode
from flax_inpaint.train import setup


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
  from skimage.metrics import structural_similarity

  rng = np.random.default_rng(0)
  for _ in range(3):
    a = rng.random((48, 40, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ours = metrics.ssim(a, b)
    reference = structural_similarity(a, b, channel_axis=-1, data_range=1.0)
    assert abs(ours - reference) <= 1e-4
  assert metrics.ssim(a, a) == pytest.approx(1.0)


def test_eval_masks_and_manifest_identical_across_runs(test_config):
  images = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), np.uint8)
  names = [f'im{i}' for i in range(5)]
  kinds = ('squares', 'boxes', 'strokes')
  runs = [{k: evaluate.eval_masks(test_config, k, 5) for k in kinds} for _ in range(2)]
  for kind in kinds:
    np.testing.assert_array_equal(runs[0][kind], runs[1][kind])
  manifests = [evaluate.manifest(images, m, names) for m in runs]
  assert manifests[0] == manifests[1]
  assert set(manifests[0]['images'][0]) >= {f'mask_sha256_{k}' for k in kinds}
  test_config.eval.seed = 4
  other = evaluate.manifest(
      images, {k: evaluate.eval_masks(test_config, k, 5) for k in kinds}, names
  )
  assert other['set_sha256'] != manifests[0]['set_sha256']


def test_every_baseline_row_and_outputs(test_config):
  rng = np.random.default_rng(2)
  images = rng.integers(0, 256, (3, 32, 32, 3), np.uint8)
  holes = {'squares': evaluate.eval_masks(test_config, 'squares', 3)}
  rows, outputs = evaluate.evaluate_methods(images, holes, baselines.repairers(), lambda a, b: None)
  results = {m: evaluate.mean_rows(r) for m, r in rows['squares'].items()}
  assert set(results) == {'pushpull', 'telea', 'ns', 'patchmatch', 'mean_fill', 'masked'}
  originals = images / 255.0
  hole_masks = holes['squares']
  for repaired in outputs['squares'].values():
    outside = hole_masks[..., 0] == 0
    np.testing.assert_allclose(repaired[outside], originals[outside], atol=1e-6)
  assert results['masked']['hole_mae'] == pytest.approx(
      np.mean([metrics.mae(np.zeros_like(o), o, h) for o, h in zip(originals, hole_masks)])
  )
  assert results['telea']['hole_psnr'] > results['masked']['hole_psnr']
  assert results['telea']['lpips'] is None  # No LPIPS weights given.


def test_hole_area_bins_add_up_to_the_pairs_evaluated(test_config):
  rng = np.random.default_rng(5)
  images = rng.integers(0, 256, (6, 32, 32, 3), np.uint8)
  kinds = ('squares', 'boxes', 'strokes')
  holes = {k: evaluate.eval_masks(test_config, k, 6) for k in kinds}
  rows, _ = evaluate.evaluate_methods(images, holes, baselines.repairers(), lambda a, b: None)
  fractions = {k: h.mean(axis=(1, 2, 3)) for k, h in holes.items()}
  table = evaluate.by_hole_area(rows, fractions)
  assert list(table) == list(metrics.AREA_BINS)
  assert sum(entry['num_images'] for entry in table.values()) == 6 * len(kinds)
  for bin_name, entry in table.items():
    members = [
        (k, i)
        for k in kinds
        for i in range(6)
        if metrics.hole_area_bin(fractions[k][i]) == bin_name
    ]
    if members:
      expected = np.mean([rows[k]['telea'][i]['hole_psnr'] for k, i in members])
      assert entry['telea']['hole_psnr'] == pytest.approx(expected)


@pytest.fixture(scope='module')
def trained_workdir(tmp_path_factory):
  """A real checkpoint of the tiny model (2 steps of configs/test.py)."""
  from conftest import load_config

  config = load_config('test')
  config.train.num_steps = 2
  workdir = tmp_path_factory.mktemp('model')
  train_tiny(config, workdir)
  return config, workdir


def test_weights_restore_whatever_the_optimizer_config(trained_workdir):
  from flax_inpaint.train import checkpointing
  from flax_inpaint.train import sharding
  from flax_inpaint.train import steps

  config, workdir = trained_workdir
  parts = build(config)
  full = checkpointing.restore(
      checkpointing.make_manager(workdir, read_only=True),
      steps.abstract_train_state(parts.model, parts.tx, 32, 0, sharding.make_mesh()),
  )
  other = config.copy_and_resolve_references()
  other.train.warmup_steps, other.train.grad_clip = 5, 1.0  # A different opt_state tree.
  inference = build(other, training=False)
  assert inference.tx is None and inference.vgg_params is None
  variables, step = setup.restore_run_variables(inference, workdir)
  assert step == 2
  for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(variables['params'])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_eval_mode_writes_every_kind_and_bin(trained_workdir, tmp_path):
  config, workdir = trained_workdir
  config = config.copy_and_resolve_references()
  config.eval.mask_kinds = ('squares', 'strokes')
  payload = eval_mode.run(config, workdir, tmp_path)
  written = json.loads((tmp_path / 'metrics.json').read_text())
  assert written == json.loads(json.dumps(payload))
  assert set(written['by_mask_kind']) == {'squares', 'strokes'}
  assert written['ours'] == written['by_mask_kind']['squares']['ours']  # Top level: 1st kind.
  assert sum(e['num_images'] for e in written['by_hole_area'].values()) == 2 * 4
  assert written['ours']['lpips'] is None  # configs/test.py: random VGG16, no LPIPS layers.
  report = (tmp_path / 'report.md').read_text()
  assert '## Masks: strokes' in report and '## By hole area' in report
  assert (tmp_path / 'grid_squares_00.png').exists() and (tmp_path / 'grid_strokes_00.png').exists()


def test_baselines_alone_need_no_checkpoint(tmp_path, test_config):
  from conftest import write_images

  write_images(tmp_path / 'val', 3, size=32)
  test_config.eval.dir = str(tmp_path / 'val')
  test_config.eval.model = False
  test_config.eval.mask_kinds = ('boxes',)
  payload = eval_mode.run(test_config, tmp_path / 'no_run', tmp_path / 'eval')
  assert 'ours' not in payload and set(payload['by_mask_kind']['boxes']) == {
      'pushpull',
      'telea',
      'ns',
      'patchmatch',
      'mean_fill',
      'masked',
  }
  assert payload['_meta']['step'] is None and payload['_meta']['num_images'] == 3
  assert (tmp_path / 'eval' / 'report.md').read_text().startswith('# Evaluation of the baselines')


def test_baseline_methods_choose_the_baselines(tmp_path, test_config):
  from conftest import write_images

  write_images(tmp_path / 'val', 2, size=32)
  test_config.eval.dir = str(tmp_path / 'val')
  test_config.eval.model = False
  test_config.eval.baseline_methods = ('pushpull', 'ns')
  payload = eval_mode.run(test_config, tmp_path / 'no_run', tmp_path / 'eval')
  assert set(payload['by_mask_kind']['squares']) == {'pushpull', 'ns'}
  test_config.eval.baseline_methods = ('pushpull', 'magic')
  with pytest.raises(
      errors.ConfigError,
      match=r"^config.eval.baseline_methods='magic' is "
      r"unknown; use one of \['pushpull', 'telea', 'ns', 'patchmatch', 'mean_fill', 'masked'\]$",
  ):
    eval_mode.run(test_config, tmp_path / 'no_run', tmp_path / 'eval2')
