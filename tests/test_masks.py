"""Hole masks: each kind's shapes and statistics, determinism, eval masks, area bins,
config validation."""

import jax
import numpy as np
import pytest
from scipy import ndimage

from flax_inpaint.config import schema
from flax_inpaint.data import masks
from flax_inpaint.evaluation import metrics
from flax_inpaint.train import validation


def brute_force(corners, height, width, size):
  mask = np.zeros((height, width), np.float32)
  for y, x in corners:
    mask[y : y + size, x : x + size] = 1.0
  return mask


def test_single_patch_is_one_square_of_ones():
  mask = np.asarray(
      masks.sample_hole_masks(jax.random.key(1), 16, 64, 48, num_patches=1, patch_size=10)
  )
  assert mask.shape == (16, 64, 48, 1)
  assert set(np.unique(mask)) <= {0.0, 1.0}
  for m in mask[..., 0]:
    assert m.sum() == 100
    ys, xs = np.nonzero(m)
    assert ys.max() - ys.min() == 9 and xs.max() - xs.min() == 9


def test_union_of_patches_bounds_and_overlaps():
  mask = np.asarray(
      masks.sample_hole_masks(jax.random.key(2), 64, 64, 64, num_patches=4, patch_size=16)
  )[..., 0]
  holes = mask.sum(axis=(1, 2))
  assert (holes >= 256).all() and (holes <= 4 * 256).all()
  assert (holes < 4 * 256).any()  # Overlaps are allowed (and happen in 64 draws).


def test_squares_match_brute_force():
  rng = np.random.default_rng(0)
  corners = rng.integers(0, 20, (5, 2))
  got = masks._squares_from_corners(corners, 30, 30, 7, np)
  np.testing.assert_array_equal(got, brute_force(corners, 30, 30, 7))


def test_same_key_same_mask_other_key_other_mask():
  draw = lambda k: np.asarray(masks.sample_hole_masks(k, 4, 32, 32, num_patches=4, patch_size=8))
  np.testing.assert_array_equal(draw(jax.random.key(3)), draw(jax.random.key(3)))
  assert not np.array_equal(draw(jax.random.key(3)), draw(jax.random.key(4)))


def test_fixed_mode_reuses_the_key():
  base = jax.random.key(5)
  fixed = [masks.step_mask_key(base, s, fixed=True) for s in (0, 7)]
  fresh = [masks.step_mask_key(base, s, fixed=False) for s in (0, 7)]
  np.testing.assert_array_equal(jax.random.key_data(fixed[0]), jax.random.key_data(fixed[1]))
  assert not np.array_equal(jax.random.key_data(fresh[0]), jax.random.key_data(fresh[1]))


def test_eval_mask_is_the_documented_function_of_seed_and_index():
  mask = masks.eval_hole_mask(0, 17, 256, 256)
  corners = np.random.default_rng([0, 17]).integers(0, 225, (4, 2))
  np.testing.assert_array_equal(mask[..., 0], brute_force(corners, 256, 256, 32))
  np.testing.assert_array_equal(mask, masks.eval_hole_mask(0, 17, 256, 256))
  assert not np.array_equal(mask, masks.eval_hole_mask(0, 18, 256, 256))


# ------------------------------------------------------------- kinds drawn on the device

SIDE = 64  # Test images are 64x64: box sides are whole pixels in [7, 38] (10-60%).
MIN_BOX, MAX_BOX = 7, 38


def mask_config(**overrides):
  """The default `config.masks` with some fields changed."""
  config = schema.get_config().masks
  config.update(overrides)
  return config


def draw(kind, key=0, batch=1000, side=SIDE, **overrides):
  """[B, H, W] numpy masks of one jitted call."""
  config = mask_config(kind=kind, **overrides)
  return np.asarray(masks.sample_masks(jax.random.key(key), batch, side, side, config))[..., 0]


def bounding_box(mask):
  rows, cols = np.nonzero(mask)
  return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def is_one_rectangle(mask):
  top, bottom, left, right = bounding_box(mask)
  return mask.sum() == (bottom - top) * (right - left)


def components(mask, connectivity):
  structure = ndimage.generate_binary_structure(2, connectivity)
  return ndimage.label(mask, structure)[1]


def test_squares_kind_is_sample_hole_masks():
  config = mask_config(kind='squares', num_patches=3, patch_size=8)
  got = masks.sample_masks(jax.random.key(9), 16, SIDE, 48, config)
  want = masks.sample_hole_masks(jax.random.key(9), 16, SIDE, 48, num_patches=3, patch_size=8)
  np.testing.assert_array_equal(got, want)
  assert got.shape == (16, SIDE, 48, 1) and got.dtype == np.float32


def test_squares_1000_draws_within_the_closed_form_bounds():
  hole_mask = draw('squares', num_patches=4, patch_size=8)
  fractions = hole_mask.mean(axis=(1, 2))
  assert (fractions >= 64 / SIDE**2).all() and (fractions <= 4 * 64 / SIDE**2).all()
  assert (fractions == 4 * 64 / SIDE**2).mean() > 0.5  # Four disjoint squares are usual.


def test_one_box_per_image_is_a_rectangle_with_uniform_sides_in_range():
  hole_mask = draw('boxes', boxes_per_image=(1, 1))
  assert set(np.unique(hole_mask)) == {0.0, 1.0}
  boxes = np.array([bounding_box(m) for m in hole_mask])
  assert all(is_one_rectangle(m) for m in hole_mask)
  heights, widths = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
  for sides in (heights, widths):
    # Every whole side in [7, 38] appears in 1,000 draws (each misses with p < 1e-13).
    np.testing.assert_array_equal(np.unique(sides), np.arange(MIN_BOX, MAX_BOX + 1))
  # Positions reach every edge of the image.
  assert boxes[:, 0].min() == 0 and boxes[:, 1].max() == SIDE
  assert boxes[:, 2].min() == 0 and boxes[:, 3].max() == SIDE


def reference_box_fractions(rng, num_masks, counts, sides):
  """The boxes distribution, drawn with numpy one box at a time."""
  fractions = []
  for _ in range(num_masks):
    hole_mask = np.zeros((SIDE, SIDE))
    for _ in range(rng.integers(counts[0], counts[1] + 1)):
      height, width = rng.integers(sides[0], sides[1] + 1, 2)
      top, left = rng.integers(0, SIDE - height + 1), rng.integers(0, SIDE - width + 1)
      hole_mask[top : top + height, left : left + width] = 1
    fractions.append(hole_mask.mean())
  return np.array(fractions)


def test_boxes_1000_draws_count_area_and_distribution():
  hole_mask = draw('boxes')  # The defaults: 1 to 3 boxes, sides 10-60%.
  fractions = hole_mask.mean(axis=(1, 2))
  assert (fractions >= MIN_BOX**2 / SIDE**2).all()
  assert (fractions <= min(1.0, 3 * MAX_BOX**2 / SIDE**2)).all()
  num_pieces = np.array([components(m, 1) for m in hole_mask])
  assert set(num_pieces) == {1, 2, 3}  # Overlapping boxes merge, so never more than 3.
  reference = reference_box_fractions(np.random.default_rng(0), 4000, (1, 3), (MIN_BOX, MAX_BOX))
  # Standard errors of the means are ~0.004 and ~0.002.
  assert abs(fractions.mean() - reference.mean()) < 0.02
  np.testing.assert_allclose(
      np.quantile(fractions, [0.25, 0.5, 0.75]),
      np.quantile(reference, [0.25, 0.5, 0.75]),
      atol=0.03,
  )


def test_strokes_1000_draws_every_image_has_a_hole_of_at_most_4_pieces():
  hole_mask = draw('strokes')
  fractions = hole_mask.mean(axis=(1, 2))
  assert (fractions > 0).all() and (fractions < 1).all()
  # Each stroke is one 8-connected piece, and there are 1 to 4 strokes.
  num_pieces = np.array([components(m, 2) for m in hole_mask])
  assert num_pieces.min() == 1 and num_pieces.max() <= 4
  assert np.mean([is_one_rectangle(m) for m in hole_mask]) < 0.01
  one_stroke = draw('strokes', key=1, strokes_per_image=(1, 1))
  assert all(components(m, 2) == 1 for m in one_stroke)
  assert one_stroke.mean() < fractions.mean()


def test_single_segment_strokes_fit_a_stadium():
  # Width 16 px at 256 -> 4 px at 64 (radius 2); steps at most 2 * diagonal / 8 long, and
  # snapping the end to the nearest pixel adds up to half a pixel on each axis.
  radius, longest = 2.0, 2 * np.hypot(SIDE, SIDE) / 8 + 0.5
  hole_mask = draw(
      'strokes', strokes_per_image=(1, 1), stroke_vertices=(2, 2), stroke_width=(16, 16)
  )
  for m in hole_mask:
    assert components(m, 2) == 1
    top, bottom, left, right = bounding_box(m)
    assert max(bottom - top, right - left) <= np.floor(longest + 2 * radius) + 1
    # Between a quarter disc (a segment in a corner) and the stadium's area + perimeter.
    assert (
        6
        <= m.sum()
        <= (2 * radius * longest + np.pi * radius**2 + 2 * longest + 2 * np.pi * radius)
    )


def test_rasterised_segments_closed_forms():
  starts = np.array([[[10, 10], [40, 40], [5, 40]]], np.float32)
  ends = np.array([[[10, 30], [40, 40], [20, 50]]], np.float32)
  radius = np.array([[2.5, 2.0, 9.0]], np.float32)

  def count(drawn):
    return int(masks.rasterise_segments(starts, ends, radius, np.array([drawn]), 64, 64).sum())

  # Rows 8-12 of columns 10-30 (105) and two caps of 8 pixels (|dx| 1: 5 rows, 2: 3).
  assert count([True, False, False]) == 121
  assert count([False, True, False]) == 13  # A dot: lattice points with x^2 + y^2 <= 4.
  assert count([False, False, False]) == 0
  assert count([True, True, False]) == 121 + 13


def test_rasterised_segments_match_brute_force():
  rng = np.random.default_rng(1)
  starts, ends = rng.uniform(-3, 27, (2, 1, 6, 2)).astype(np.float32)
  radius = rng.uniform(0.5, 4, (1, 6)).astype(np.float32)
  drawn = np.array([[True, True, False, True, True, True]])
  got = np.asarray(masks.rasterise_segments(starts, ends, radius, drawn, 24, 20))[0]
  want = np.zeros((24, 20), bool)
  for a, b, r, on in zip(starts[0].astype(float), ends[0].astype(float), radius[0], drawn[0]):
    for row in range(24):
      for col in range(20):
        p, d = np.array([row, col]), b - a
        t = np.clip((p - a) @ d / (d @ d), 0, 1)
        want[row, col] |= on and np.sum((p - a - t * d) ** 2) <= r * r
  np.testing.assert_array_equal(got, want)


MIXED = dict(
    num_patches=1, patch_size=8, boxes_per_image=(1, 1), box_side=(0.3, 0.6), mix=(1.0, 1.0, 2.0)
)


def kinds_of(hole_mask):
  """'squares' (one 8x8 square), 'boxes' (one rectangle of sides 20-38) or 'strokes'."""
  names = []
  for m in hole_mask:
    if is_one_rectangle(m):
      top, bottom, left, right = bounding_box(m)
      names.append('squares' if bottom - top == right - left == 8 else 'boxes')
    else:
      names.append('strokes')
  return np.array(names)


def test_mixed_draws_each_kind_with_its_weight():
  all_three = kinds_of(draw('mixed', **MIXED))
  # Standard errors ~0.014 (1/4) and ~0.016 (1/2).
  for kind, share in (('squares', 0.25), ('boxes', 0.25), ('strokes', 0.5)):
    assert abs((all_three == kind).mean() - share) < 0.06
  assert (kinds_of(draw('mixed', **{**MIXED, 'mix': (1.0, 0.0, 0.0)})) == 'squares').all()
  only_strokes = draw('mixed', **{**MIXED, 'mix': (0.0, 0.0, 2.0)})
  assert (kinds_of(only_strokes) == 'strokes').mean() > 0.99
  # The strokes' distribution: hole-fraction quartiles as kind 'strokes' draws them.
  fractions = only_strokes.mean(axis=(1, 2))
  assert (fractions > 0).all()
  np.testing.assert_allclose(
      np.quantile(fractions, [0.25, 0.5, 0.75]),
      np.quantile(draw('strokes', key=4).mean(axis=(1, 2)), [0.25, 0.5, 0.75]),
      atol=0.03,
  )


def test_each_kind_is_deterministic_given_the_key():
  for kind, params in (('squares', {}), ('boxes', {}), ('strokes', {}), ('mixed', MIXED)):
    first = draw(kind, key=5, **params)  # Compiled by the tests above: same shapes.
    np.testing.assert_array_equal(first, draw(kind, key=5, **params))
    assert not np.array_equal(first, draw(kind, key=6, **params)), kind


def test_sample_masks_inside_jit_equals_eager():
  config = mask_config(kind='strokes')
  step = jax.jit(lambda key: masks.sample_masks(key, 1000, SIDE, SIDE, config))
  np.testing.assert_array_equal(step(jax.random.key(2))[..., 0], draw('strokes', key=2))


def test_files_and_unknown_kinds_are_not_drawn():
  for kind in ('files', 'circles'):
    with pytest.raises(ValueError, match='not drawn on the device'):
      masks.sample_masks(jax.random.key(0), 2, 32, 32, mask_config(kind=kind))


# ----------------------------------------------------------------------------- eval masks


def test_eval_masks_deterministic_distinct_and_at_most_half_the_image():
  config = mask_config()
  by_kind = {
      kind: np.stack([masks.eval_mask(3, i, 256, 256, config, kind) for i in range(200)])
      for kind in masks.EVAL_KINDS
  }
  for kind, hole_masks in by_kind.items():
    assert hole_masks.shape == (200, 256, 256, 1) and hole_masks.dtype == np.float32
    fractions = hole_masks.mean(axis=(1, 2, 3))
    assert (fractions > 0).all() and (fractions <= 0.5).all(), kind
    np.testing.assert_array_equal(hole_masks[7], masks.eval_mask(3, 7, 256, 256, config, kind))
    assert len({m.tobytes() for m in hole_masks}) == 200, kind
    assert not np.array_equal(hole_masks[0], masks.eval_mask(4, 0, 256, 256, config, kind))
  for index in range(200):
    np.testing.assert_array_equal(
        by_kind['squares'][index], masks.eval_hole_mask(3, index, 256, 256)
    )
  assert not np.array_equal(by_kind['boxes'], by_kind['strokes'])
  # The strokes' holes fall in every area bin but the largest's (LaMa-like sizes).
  bins = {metrics.hole_area_bin(f) for f in by_kind['strokes'].mean(axis=(1, 2, 3))}
  assert set(metrics.AREA_BINS[:4]) <= bins


def test_eval_masks_over_half_the_image_are_redrawn():
  big_boxes = mask_config(boxes_per_image=(2, 2), box_side=(0.3, 0.8))
  big_squares = mask_config(num_patches=4, patch_size=28)
  for config, kind in ((big_boxes, 'boxes'), (big_squares, 'squares')):
    params = masks.mask_params(config)
    redrawn = 0
    for index in range(50):
      first = masks._eval_candidate(0, index, SIDE, SIDE, params, kind, 0)
      hole_mask = masks.eval_mask(0, index, SIDE, SIDE, config, kind)[..., 0]
      assert 0 < hole_mask.mean() <= 0.5
      if first.mean() > 0.5:
        redrawn += 1
      else:
        np.testing.assert_array_equal(hole_mask, first)
    assert redrawn > 5, kind
  # squares' first draw is the baselines' mask.
  np.testing.assert_array_equal(
      masks._eval_candidate(0, 3, SIDE, SIDE, masks.mask_params(big_squares), 'squares', 0),
      masks.eval_hole_mask(0, 3, SIDE, SIDE, num_patches=4, patch_size=28)[..., 0],
  )


def test_eval_mask_that_never_fits_is_an_error():
  with pytest.raises(ValueError) as error:
    masks.eval_mask(0, 0, SIDE, SIDE, mask_config(box_side=(0.8, 1.0)), 'boxes')
  assert str(error.value) == (
      "config.masks: no 'boxes' eval mask of image 0 at 64x64 has a hole of at most 50% of "
      "the image in 100 draws: make that kind's holes smaller"
  )
  with pytest.raises(ValueError, match='unknown'):
    masks.eval_mask(0, 0, SIDE, SIDE, mask_config(), 'mixed')


# ------------------------------------------------------------------------------ area bins


def test_hole_area_bins_are_lower_exclusive_upper_inclusive():
  assert metrics.hole_area_bin(0.0) == '0-10%'
  assert metrics.hole_area_bin(0.1) == '0-10%'
  assert metrics.hole_area_bin(0.1 + 1e-6) == '10-20%'
  assert metrics.hole_area_bin(np.float32(0.3)) == '20-30%'  # float32(0.3) > 0.3.
  assert metrics.hole_area_bin(0.45) == '40-50%'
  assert metrics.hole_area_bin(0.5) == '40-50%'
  for fraction in (-0.01, 0.5 + 1e-6, 1.0):
    with pytest.raises(ValueError, match='outside'):
      metrics.hole_area_bin(fraction)


def test_hole_area_bins_of_float32_means_match_pixel_counts():
  # 100x100 images: bin edges fall on whole pixel counts (1000, 2000, ...).
  hole_mask = np.zeros(100 * 100, np.float32)
  for count in range(0, 5001):
    hole_mask[:count] = 1
    want = metrics.AREA_BINS[max(0, -(-count // 1000) - 1)]  # ceil(count / 1000) - 1
    assert metrics.hole_area_bin(hole_mask.mean()) == want, count


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    'field,value',
    [
        ('kind', 'circles'),
        ('num_patches', 0),
        ('patch_size', 33),
        ('patch_size', 2.5),
        ('boxes_per_image', (3, 1)),
        ('boxes_per_image', (0, 2)),
        ('boxes_per_image', (1, 2, 3)),
        ('box_side', (0.0, 0.5)),
        ('box_side', (0.5, 1.5)),
        ('strokes_per_image', (1, 17)),
        ('stroke_vertices', (1, 4)),
        ('stroke_vertices', (4.5, 6)),
        ('stroke_width', (40, 5)),
        ('mix', (1.0, -1.0, 1.0)),
        ('mix', (0.0, 0.0, 0.0)),
        ('mix', (1.0, 1.0)),
    ],
)
def test_validate_names_the_bad_field(field, value):
  # A dict: ConfigDict itself refuses some of these types.
  with pytest.raises(ValueError, match=rf'^config\.masks\.{field}='):
    validation.validate_mask_config({**mask_config().to_dict(), field: value}, 32)


def test_validate_message_and_valid_configs():
  with pytest.raises(ValueError) as error:
    validation.validate_mask_config(mask_config(boxes_per_image=(3, 1)), 256)
  assert str(error.value) == (
      'config.masks.boxes_per_image=(3, 1) is not an inclusive range (lo, hi) of whole '
      'numbers with 1 <= lo <= hi <= 32: pass e.g. --config.masks.boxes_per_image=(1,3)'
  )
  with pytest.raises(ValueError) as error:
    validation.validate_mask_config(mask_config(kind='files'), 256)
  assert str(error.value) == (
      "config.masks.kind='files' needs a folder of mask images: pass " '--config.masks.dir=FOLDER'
  )
  for kind in masks.DRAWN_KINDS:
    validation.validate_mask_config(mask_config(kind=kind), 256)
  validation.validate_mask_config(mask_config(kind='files', dir='/masks'), 256)
  validation.validate_mask_config({**mask_config().to_dict(), 'mix': [0, 0, 1]}, 256)
