"""Hole masks: squares of the right size, 1 = hole, determinism, eval masks."""

import jax
import numpy as np

from flax_inpaint import masks


def brute_force(corners, height, width, size):
  mask = np.zeros((height, width), np.float32)
  for y, x in corners:
    mask[y:y + size, x:x + size] = 1.0
  return mask


def test_single_patch_is_one_square_of_ones():
  mask = np.asarray(masks.sample_hole_masks(jax.random.key(1), 16, 64, 48, num_patches=1,
                                            patch_size=10))
  assert mask.shape == (16, 64, 48, 1)
  assert set(np.unique(mask)) <= {0.0, 1.0}
  for m in mask[..., 0]:
    assert m.sum() == 100
    ys, xs = np.nonzero(m)
    assert ys.max() - ys.min() == 9 and xs.max() - xs.min() == 9


def test_union_of_patches_bounds_and_overlaps():
  mask = np.asarray(masks.sample_hole_masks(jax.random.key(2), 64, 64, 64, num_patches=4,
                                            patch_size=16))[..., 0]
  holes = mask.sum(axis=(1, 2))
  assert (holes >= 256).all() and (holes <= 4 * 256).all()
  assert (holes < 4 * 256).any()  # Overlaps are allowed (and happen in 64 draws).


def test_squares_match_brute_force():
  rng = np.random.default_rng(0)
  corners = rng.integers(0, 20, (5, 2))
  got = masks._squares_from_corners(corners, 30, 30, 7, np)  # pylint: disable=protected-access
  np.testing.assert_array_equal(got, brute_force(corners, 30, 30, 7))


def test_same_key_same_mask_other_key_other_mask():
  draw = lambda k: np.asarray(masks.sample_hole_masks(k, 4, 32, 32, num_patches=4,
                                                      patch_size=8))
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
