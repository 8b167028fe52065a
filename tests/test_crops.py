"""crops: windows around the holes, run at a few bucket sizes, pasted back in the holes only.

The model is the real tiny U-Net (random init) behind a jitted predict; every test records
the shapes predict is called with, as the compiled programs they stand for.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_inpaint.data import crops
from flax_inpaint.nn import models
from flax_inpaint.train import steps

# Small enough for CPU tests: the tiny U-Net halves twice, so sides are multiples of 4.
OPTIONS = dict(min_window=32, margin=8, buckets=(32, 64), multiple=4)
# The options with the default strategy (config.inpaint.strategy).
CROP = dict(OPTIONS, strategy='crop')


@pytest.fixture(scope='module')
def model_apply():
  model = models.UNet(widths=models.WIDTHS['tiny'])
  variables = steps.init_variables(model, 32, seed=0)  # jax.random.key(0) at 32 x 32.

  @jax.jit
  def apply(images, holes):
    images = images.astype(jnp.float32) / 255.0
    holes = holes[..., None].astype(jnp.float32)
    return model.apply(variables, models.mask_image(images, holes), holes)

  return apply


class RecordingPredict:
  """The model's predict, remembering the input shape of every call."""

  def __init__(self, apply):
    self.apply = apply
    self.shapes = []

  def __call__(self, images, holes):
    assert images.dtype == np.uint8 and holes.dtype == bool
    self.shapes.append(images.shape)
    return np.asarray(self.apply(images, holes))


@pytest.fixture
def predict(model_apply):
  return RecordingPredict(model_apply)


def smooth_image(height, width, seed=0):
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[:height, :width]
  phase = rng.uniform(0, 6, 3)
  channels = [128 + 100 * np.sin(x / 9.0 + p) * np.cos(y / 7.0 + p) for p in phase]
  return np.stack(channels, -1).astype(np.uint8)


def hole_mask(height, width, *boxes):
  hole = np.zeros((height, width), bool)
  for y, x, h, w in boxes:
    hole[y : y + h, x : x + w] = True
  return hole


def random_hole(height, width, rng, count):
  hole = np.zeros((height, width), bool)
  for _ in range(count):
    h, w = rng.integers(1, 12, 2)
    y, x = rng.integers(0, height), rng.integers(0, width)
    hole[y : y + h, x : x + w] = True
  return hole


def windows_for(hole, strategy='crop'):
  return crops.plan_windows(hole, strategy=strategy, **OPTIONS)


@pytest.mark.parametrize('strategy', crops.STRATEGIES)
def test_pixels_outside_holes_are_bit_exact(predict, strategy):
  image = smooth_image(90, 70)
  hole = hole_mask(90, 70, (5, 5, 4, 6), (40, 30, 12, 9), (80, 60, 10, 10), (20, 50, 50, 3))
  repaired = crops.inpaint_crops(image, hole, predict, strategy=strategy, **OPTIONS)
  assert repaired.dtype == np.uint8 and repaired.shape == image.shape
  np.testing.assert_array_equal(repaired[~hole], image[~hole])
  # The holes were painted: a random-init U-Net predicts ~0.5 grey, not the smooth image.
  assert (repaired[hole] != image[hole]).mean() > 0.5


def test_holes_get_the_models_prediction_on_the_window(predict):
  image = smooth_image(120, 100, seed=1)
  hole = hole_mask(120, 100, (50, 40, 6, 6))
  repaired = crops.inpaint_crops(image, hole, predict, **CROP)
  # The window by hand: the 6x6 hole grown to 32x32 around it, run at the 32 bucket.
  (window,) = windows_for(hole)
  assert (window.y0, window.x0, window.y1, window.x1, window.run_shape) == (
      37,
      27,
      69,
      59,
      (32, 32),
  )
  expected = np.asarray(predict(image[None, 37:69, 27:59], hole[None, 37:69, 27:59]))[0]
  expected = np.clip(np.round(expected * 255), 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(
      repaired[37:69, 27:59][hole[37:69, 27:59]], expected[hole[37:69, 27:59]]
  )


def expected_repair(predict, image, hole, window, mode):
  """The window's hole pixels as `window` padded by hand with np.pad(mode) predicts them."""
  pads = (window.run_shape[0] - window.height, window.run_shape[1] - window.width)
  crop_image, crop_hole = image[window.slices], hole[window.slices]
  padded_image = np.pad(crop_image, ((0, pads[0]), (0, pads[1]), (0, 0)), mode=mode)
  padded_hole = np.pad(crop_hole, ((0, pads[0]), (0, pads[1])), mode=mode)
  expected = np.asarray(predict(padded_image[None], padded_hole[None]))[0]
  expected = expected[: window.height, : window.width]
  return np.clip(np.round(expected * 255), 0, 255).astype(np.uint8)[crop_hole]


def test_a_window_is_padded_to_its_run_shape_by_reflection(predict):
  # 40 x 50 image, 14 x 30 hole: the window is 32 x 46 (at least min_window rows; the hole's
  # columns + 8 px margins), run at 32 x 52 (the run sides are 32, 36, 44, 52, 60, 64).
  image = smooth_image(40, 50, seed=2)
  hole = hole_mask(40, 50, (13, 10, 14, 30))
  (window,) = windows_for(hole)
  assert (window.y0, window.x0, window.y1, window.x1, window.run_shape) == (4, 2, 36, 48, (32, 52))
  repaired = crops.inpaint_crops(image, hole, predict, **CROP)
  np.testing.assert_array_equal(
      repaired[window.slices][hole[window.slices]],
      expected_repair(predict, image, hole, window, 'reflect'),
  )


def test_padding_as_large_as_the_window_is_symmetric(predict):
  # A 14 x 30 image is its own window, run at 32 x 32: 18 rows of padding are more than
  # the window's 14, too many to reflect.
  image = smooth_image(14, 30, seed=5)
  hole = hole_mask(14, 30, (3, 10, 5, 8))
  (window,) = windows_for(hole)
  assert (window.y0, window.x0, window.y1, window.x1, window.run_shape) == (0, 0, 14, 30, (32, 32))
  repaired = crops.inpaint_crops(image, hole, predict, **CROP)
  np.testing.assert_array_equal(
      repaired[hole], expected_repair(predict, image, hole, window, 'symmetric')
  )


def test_close_holes_share_a_window_and_far_holes_do_not():
  # 10 px apart: closer than two margins (16 px), one window.
  close = windows_for(hole_mask(200, 200, (20, 20, 4, 4), (20, 34, 4, 4)))
  assert len(close) == 1
  assert (close[0].x0, close[0].x1) == (12, 46)  # Both holes (x 20..37) with 8 px margins.
  far = windows_for(hole_mask(200, 200, (20, 20, 4, 4), (150, 150, 4, 4)))
  assert [(w.y0, w.x0, w.y1, w.x1) for w in far] == [(6, 6, 38, 38), (136, 136, 168, 168)]


@pytest.mark.parametrize('seed', range(6))
def test_windows_are_disjoint_cover_every_hole_and_reach_train_size(seed):
  rng = np.random.default_rng(seed)
  height, width = (20, 50) if seed == 0 else rng.integers(24, 200, 2)
  hole = random_hole(height, width, rng, count=rng.integers(1, 12))
  windows = windows_for(hole)
  covered = np.zeros_like(hole, int)
  for w in windows:
    covered[w.y0 : w.y1, w.x0 : w.x1] += 1
    assert w.height >= min(32, height) and w.width >= min(32, width)
    assert 0 <= w.y0 < w.y1 <= height and 0 <= w.x0 < w.x1 <= width
  assert covered.max() == 1  # Disjoint.
  assert (covered[hole] == 1).all()  # Every hole pixel in a window.


def test_window_shifts_inside_the_image_rather_than_shrink():
  (corner,) = windows_for(hole_mask(100, 100, (0, 97, 2, 3)))
  assert (corner.y0, corner.x0, corner.y1, corner.x1) == (0, 68, 32, 100)
  (whole,) = windows_for(hole_mask(20, 25, (3, 4, 2, 2)))  # Smaller than min_window.
  assert (whole.y0, whole.x0, whole.y1, whole.x1, whole.run_shape) == (0, 0, 20, 25, (32, 32))


def test_six_image_sizes_compile_four_programs_of_run_sides(predict):
  rng = np.random.default_rng(0)
  sizes = [(40, 50), (64, 64), (100, 37), (128, 96), (200, 200), (33, 33)]
  for i, (height, width) in enumerate(sizes):
    image = smooth_image(height, width, seed=i)
    hole = hole_mask(height, width, (height // 3, width // 4, 5, 6))
    if i % 2:  # A larger hole too: a window over 32, run at a larger side.
      hole |= hole_mask(height, width, (height // 2, width // 2, 20, 20)) & (
          rng.random((height, width)) < 0.9
      )
    repaired = crops.inpaint_crops(image, hole, predict, **CROP)
    np.testing.assert_array_equal(repaired[~hole], image[~hole])
  assert len(predict.shapes) >= len(sizes)
  assert crops.run_sides(OPTIONS['buckets'], OPTIONS['multiple']) == (32, 36, 44, 52, 60, 64)
  assert set(predict.shapes) == {(1, 32, 32, 3), (1, 36, 36, 3), (1, 52, 52, 3), (1, 60, 60, 3)}


def test_whole_image_path_compiles_one_program_per_size(predict):
  # The contrast: strategy 'full' runs each image at its own padded size.
  for height, width in [(40, 50), (64, 64), (100, 37)]:
    hole = hole_mask(height, width, (10, 10, 4, 4))
    crops.inpaint_crops(smooth_image(height, width), hole, predict, strategy='full', **OPTIONS)
  assert predict.shapes == [(1, 40, 52, 3), (1, 64, 64, 3), (1, 100, 40, 3)]


def test_resize_runs_a_large_window_at_the_largest_bucket(predict):
  image = smooth_image(200, 200, seed=3)
  hole = hole_mask(200, 200, (50, 60, 100, 80))
  (window,) = windows_for(hole, 'resize')
  # 100 x 80 hole + 8 px margins = 116 x 96, shrunk by 64 / 116 to 64 x 53, run at 64 x 60.
  assert (window.height, window.width, window.run_shape) == (116, 96, (64, 60))
  assert window.scaled_shape == (64, 53)
  repaired = crops.inpaint_crops(image, hole, predict, strategy='resize', **OPTIONS)
  assert predict.shapes == [(1, 64, 60, 3)]
  np.testing.assert_array_equal(repaired[~hole], image[~hole])
  # The prediction, scaled back up, fills the hole: its mean is the prediction's mean there.
  small_image, small_hole = crops.cut_window(image, hole, window)
  prediction = np.asarray(predict(small_image[None], small_hole[None]))[0]
  # The shrunk hole: the hole's rows 8..107 and columns 8..87 of the window, times 64 / 116.
  # (Columns 53..59 are padding, where the hole is mirrored.)
  rows, cols = np.nonzero(small_hole[:, :53])
  assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 59, 4, 48)
  np.testing.assert_allclose(
      repaired[hole].mean(0), prediction[:, :53][small_hole[:, :53]].mean(0) * 255, atol=2
  )
  # 'crop' runs the same window at its own size instead: a new program.
  crops.inpaint_crops(image, hole, predict, strategy='crop', **OPTIONS)
  assert predict.shapes[2:] == [(1, 116, 96, 3)]


def test_windows_of_one_bucket_are_batched(predict):
  image = smooth_image(100, 150, seed=4)
  hole = hole_mask(100, 150, (5, 5, 3, 3), (80, 5, 3, 3), (5, 130, 3, 3), (50, 70, 20, 20))
  repaired = crops.inpaint_crops(image, hole, predict, **CROP)
  assert predict.shapes == [(3, 32, 32, 3), (1, 36, 36, 3)]
  # Fixed batches: every call of a bucket has one shape; the same pixels.
  fixed = crops.inpaint_crops(image, hole, predict, batch_size=2, **CROP)
  assert predict.shapes[2:] == [(2, 32, 32, 3), (2, 32, 32, 3), (2, 36, 36, 3)]
  assert np.abs(fixed.astype(int) - repaired).max() <= 1


def test_no_hole_copies_the_image_without_running_the_model(predict):
  image = smooth_image(40, 40)
  repaired = crops.inpaint_crops(image, np.zeros((40, 40), bool), predict, **CROP)
  np.testing.assert_array_equal(repaired, image)
  assert repaired is not image and predict.shapes == []


def test_bad_options_raise_one_line():
  hole = hole_mask(40, 40, (1, 1, 2, 2))
  with pytest.raises(
      ValueError, match=r"^inpaint.strategy='tile': use one of crop, resize, " r'full$'
  ):
    crops.plan_windows(hole, min_window=32, margin=8, buckets=(32,), multiple=4, strategy='tile')
  with pytest.raises(
      ValueError, match=r'^buckets=\(32, 50\): give sides that are multiples ' r'of 4$'
  ):
    crops.plan_windows(hole, min_window=32, margin=8, buckets=(32, 50), multiple=4, strategy='crop')


# The defaults at 256 (buckets 0.75, 1, 2, 4 x 256) and the small model's multiple.
DEFAULTS_AT_256 = dict(min_window=192, margin=64, buckets=(192, 256, 512, 1024), multiple=16)


def test_run_sides_fill_the_buckets_at_most_1_22x_apart():
  sides = crops.run_sides(DEFAULTS_AT_256['buckets'], 16)
  assert sides == (192, 224, 256, 304, 368, 448, 512, 624, 752, 912, 1024)
  assert max(b / a for a, b in zip(sides, sides[1:])) <= 1.5**0.5
  # The large model's multiple of 32 gives other sides, as many programs at most.
  assert crops.run_sides(DEFAULTS_AT_256['buckets'], 32) == (
      192,
      224,
      256,
      288,
      352,
      416,
      480,
      512,
      608,
      736,
      896,
      1024,
  )


@pytest.mark.parametrize(
    'boxes,expected',
    [
        # Issue 21's case: four 32 x 32 holes on the diagonal of one 256 x 256 region of a
        # 2048 x 1536 photo, as inference_benchmark places them: one 313 x 313 window, which
        # ran at 512 x 512 (2.7x its area) and now at 368 x 368 (1.38x).
        (
            [(635 + 51 * i, 835 + 51 * i, 32, 32) for i in range(4)],
            [((571, 771, 884, 1084), (368, 368))],
        ),
        # A long thin scratch: a 200 x 912 window, which ran at 1024 x 1024 (5.7x).
        ([(700, 500, 72, 784)], [((636, 436, 836, 1348), (224, 912))]),
        # One small hole: the smallest window, no padding.
        ([(100, 100, 20, 20)], [((14, 14, 206, 206), (192, 192))]),
        # Two groups: a 300 x 300 hole (428 px window) and a 120 x 40 one far away (248 x 192).
        (
            [(200, 200, 300, 300), (1200, 1700, 120, 40)],
            [((136, 136, 564, 564), (448, 448)), ((1136, 1624, 1384, 1816), (256, 192))],
        ),
    ],
)
def test_no_window_pays_more_than_1_5x_its_area(boxes, expected):
  hole = hole_mask(1536, 2048, *boxes)
  windows = crops.plan_windows(hole, strategy='crop', **DEFAULTS_AT_256)
  assert [((w.y0, w.x0, w.y1, w.x1), w.run_shape) for w in windows] == expected
  assert max(w.padded_area_ratio for w in windows) <= 1.5


@pytest.mark.parametrize('seed', range(4))
def test_random_hole_layouts_pay_at_most_1_5x(seed):
  rng = np.random.default_rng(seed)
  hole = np.zeros((1536, 2048), bool)
  for _ in range(rng.integers(1, 8)):
    height, width = rng.integers(4, 400, 2)
    y, x = rng.integers(0, 1536 - height), rng.integers(0, 2048 - width)
    hole[y : y + height, x : x + width] = True
  for strategy in ('crop', 'resize'):
    windows = crops.plan_windows(hole, strategy=strategy, **DEFAULTS_AT_256)
    sides = crops.run_sides(DEFAULTS_AT_256['buckets'], 16)
    for window in windows:
      scaled_area = window.scaled_shape[0] * window.scaled_shape[1]
      assert window.run_shape[0] * window.run_shape[1] <= 1.5 * scaled_area, window
      if max(window.height, window.width) <= 1024:
        assert set(window.run_shape) <= set(sides), window
