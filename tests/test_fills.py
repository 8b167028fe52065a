"""The push-pull coarse fill, the U-Net that corrects it, crops and EMA in training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import build
from conftest import load_config
from conftest import train_tiny
from flax_inpaint import errors
from flax_inpaint.data import masks
from flax_inpaint.evaluation import baselines
from flax_inpaint.nn import fills
from flax_inpaint.nn import models
from flax_inpaint.train import sharding
from flax_inpaint.train import steps
from flax_inpaint.train import validation


def fill(image, hole):
  return np.asarray(
      fills.pushpull(
          jnp.asarray(image, jnp.float32)[None], jnp.asarray(hole, jnp.float32)[None, ..., None]
      )[0]
  )


def test_one_hole_in_a_2x2_image_gets_the_mean_of_the_other_three():
  image = np.array([[[0.1], [0.5]], [[0.9], [0.7]]], np.float32)
  hole = np.array([[0, 0], [0, 1]], np.float32)
  filled = fill(image, hole)
  np.testing.assert_allclose(filled[1, 1, 0], (0.1 + 0.5 + 0.9) / 3, rtol=1e-6)
  np.testing.assert_array_equal(filled[hole == 0], image[hole == 0])


def test_a_single_valid_pixel_fills_an_odd_sized_image_with_its_colour():
  hole = np.ones((5, 7), np.float32)
  hole[3, 1] = 0
  image = np.zeros((5, 7, 2), np.float32)
  image[3, 1] = (0.25, 0.75)
  np.testing.assert_allclose(fill(image, hole), np.broadcast_to([0.25, 0.75], (5, 7, 2)), rtol=1e-6)


def test_a_block_with_valid_pixels_keeps_their_mean_and_an_empty_one_takes_the_coarse_level():
  # 4x4: the top-left 2x2 block is all hole, the rest holds 0.2 (left half) and 0.6.
  image = np.where(np.arange(4)[None, :, None] < 2, 0.2, 0.6).repeat(4, 0).astype(np.float32)
  hole = np.zeros((4, 4), np.float32)
  hole[:2, :2] = 1
  # Level 1 (2x2): the empty block takes level 2 (1x1), the mean of the 12 valid pixels.
  coarse = np.array([[[(0.2 * 4 + 0.6 * 8) / 12], [0.6]], [[0.2], [0.6]]], np.float32)
  expected = jax.image.resize(coarse[None], (1, 4, 4, 1), 'linear')[0]
  np.testing.assert_allclose(fill(image, hole)[:2, :2], np.asarray(expected)[:2, :2], rtol=1e-6)


def test_no_holes_is_the_identity_and_no_valid_pixel_gives_zeros():
  rng = np.random.default_rng(0)
  image = rng.random((6, 10, 3), np.float32)
  np.testing.assert_array_equal(fill(image, np.zeros((6, 10))), image)
  np.testing.assert_array_equal(fill(image, np.ones((6, 10))), np.zeros_like(image))


def test_the_baseline_is_the_fill_and_beats_the_mean_colour_on_a_gradient():
  ramp = np.linspace(0, 1, 32, dtype=np.float32)
  image = np.stack([np.broadcast_to(ramp, (32, 32))] * 3, -1)
  hole = np.zeros((32, 32, 1), np.float32)
  hole[8:24, 8:24] = 1
  repaired = baselines.pushpull(image, hole)
  np.testing.assert_array_equal(repaired, fill(image, hole[..., 0]))
  error = lambda x: np.abs(x - image)[hole[..., 0] > 0].mean()
  assert error(repaired) < 0.5 * error(baselines.mean_fill(image, hole))


def pushpull_config():
  config = load_config('test')
  config.model.coarse_fill = 'pushpull'
  return config


def test_an_untrained_corrector_returns_the_fill_exactly():
  config = pushpull_config()
  model = models.create_model(config.model, config.impl)
  rng = np.random.default_rng(1)
  images = rng.random((2, 32, 32, 3), np.float32)
  hole = masks.sample_hole_masks(jax.random.key(0), 2, 32, 32, num_patches=2, patch_size=8)
  variables = steps.init_variables(model, 32)
  prediction = model.apply(variables, models.mask_image(images, hole), hole)
  np.testing.assert_array_equal(
      np.asarray(prediction), np.asarray(fills.pushpull(models.mask_image(images, hole), hole))
  )


def test_the_corrector_learns_and_moves_away_from_the_fill():
  config = pushpull_config()
  config.train.lr = 1e-2
  config.train.num_steps = 1
  parts = build(config)
  state = steps.create_train_state(parts.model, parts.tx, 32, 0, parts.mesh)
  step = steps.make_train_step(parts.model, parts.tx, parts.config, parts.mesh)
  images = sharding.global_batch(
      np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), np.uint8), parts.mesh
  )
  for _ in range(3):
    state, metrics = step(state, images, parts.vgg_params, jax.random.key(0))
  last_kernel = state.params['Conv_2']['kernel']
  assert np.isfinite(float(metrics['loss']))
  assert float(jnp.abs(last_kernel).max()) > 0


@pytest.mark.parametrize('crop', [64, 96])
def test_holes_on_a_crop_keep_their_whole_image_sizes(crop):
  config = load_config('test').masks
  config.num_patches, config.patch_size = 1, 32
  holes = np.asarray(masks.sample_masks(jax.random.key(3), 50, crop, crop, config, full_side=256))[
      ..., 0
  ]
  assert (holes.sum(axis=(1, 2)) == 32 * 32).all()
  config.kind = 'boxes'
  config.boxes_per_image = (1, 1)
  config.box_side = (0.1, 0.6)
  boxes = np.asarray(masks.sample_masks(jax.random.key(4), 200, crop, crop, config, full_side=256))[
      ..., 0
  ]
  rows, cols = boxes.any(axis=2).sum(axis=1), boxes.any(axis=1).sum(axis=1)
  # 0.1 x 256 = 26 px at least (not 0.1 x the crop); at most 0.6 x the crop.
  assert rows.min() >= 26 and cols.min() >= 26
  assert rows.max() <= int(0.6 * crop) and cols.max() <= int(0.6 * crop)
  assert rows.max() > 26 + 10


def test_stroke_widths_follow_the_whole_image_on_a_crop():
  config = load_config('test').masks
  config.kind = 'strokes'
  config.stroke_width = (20, 20)
  params = masks.mask_params(config, full_side=256)
  _, radius, _ = masks.stroke_walks(jax.random.key(0), 4, 64, 64, params)
  np.testing.assert_allclose(np.asarray(radius), 10.0)
  _, radius, _ = masks.stroke_walks(jax.random.key(0), 4, 64, 64, masks.mask_params(config))
  np.testing.assert_allclose(np.asarray(radius), 10.0 * 64 / 256)


def test_training_on_crops_draws_holes_on_the_crop(tmp_path):
  from conftest import write_images
  from flax_inpaint.data import pipeline

  write_images(tmp_path / 'train', 6, size=64)
  config = load_config('test')
  config.data.source, config.data.dir = 'folder', str(tmp_path / 'train')
  config.data.image_size, config.data.crop_size = 64, 32
  images = next(pipeline.train_batches(validation.resolve(config)))
  assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8


def test_a_bad_crop_size_is_one_line():
  config = load_config('test')
  config.data.crop_size = 40
  with pytest.raises(
      errors.ConfigError,
      match=r'^config.data.crop_size=40 must be at '
      r'most data.image_size=32 and divisible by 4, or None$',
  ):
    validation.resolve(config)


def test_ema_params_are_the_moving_average_of_the_params():
  config = load_config('test')
  config.train.ema_decay = 0.75
  parts = build(config)
  state = steps.create_train_state(parts.model, parts.tx, 32, 0, parts.mesh, ema=True)
  step = steps.make_train_step(parts.model, parts.tx, parts.config, parts.mesh)
  images = sharding.global_batch(
      np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), np.uint8), parts.mesh
  )
  before = jax.device_get(state.params)
  state, _ = step(state, images, parts.vgg_params, jax.random.key(0))
  after = jax.device_get(state.params)
  for old, new, ema in zip(
      *(jax.tree.leaves(t) for t in (before, after, jax.device_get(state.ema_params)))
  ):
    np.testing.assert_allclose(ema, 0.75 * old + 0.25 * new, rtol=1e-6, atol=1e-7)
  assert steps.inference_params(state) is state.ema_params


def test_init_from_a_workdir_starts_from_its_params(tmp_path):
  config = load_config('test')
  first = train_tiny(config, tmp_path / 'first')
  config.train.init_from = str(tmp_path / 'first')
  config.train.num_steps = 1
  config.train.lr = 1e-30  # One step that cannot move float32 params.
  second = train_tiny(config, tmp_path / 'second')
  for a, b in zip(jax.tree.leaves(first.params), jax.tree.leaves(second.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-20)
  assert int(second.step) == 1


def test_init_from_a_run_with_ema_starts_from_its_moving_average(tmp_path):
  config = load_config('test')
  config.train.ema_decay = 0.5
  first = train_tiny(config, tmp_path / 'first')
  config.train.ema_decay = 0.0
  config.train.init_from = str(tmp_path / 'first')
  config.train.num_steps = 1
  config.train.lr = 1e-30
  second = train_tiny(config, tmp_path / 'second')
  for a, b in zip(jax.tree.leaves(first.ema_params), jax.tree.leaves(second.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-20)
  assert second.ema_params == {}
