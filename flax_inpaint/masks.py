"""Hole masks: square patches, 1 = hole.

`sample_hole_masks` is pure jnp, drawn on the device inside the jitted train step.
`eval_hole_masks` is numpy: each mask a pure function of (seed, image index), so two
runs or two machines evaluate the same holes.
"""

import jax
import jax.numpy as jnp
import numpy as np


def _squares_from_corners(corners, height, width, patch_size, xp):
  """[..., P, 2] (y, x) corners -> [..., H, W] mask of the union of the squares."""
  rows = xp.arange(height)
  cols = xp.arange(width)
  in_rows = (rows >= corners[..., 0:1]) & (rows < corners[..., 0:1] + patch_size)
  in_cols = (cols >= corners[..., 1:2]) & (cols < corners[..., 1:2] + patch_size)
  covered = xp.einsum('...ph,...pw->...hw', in_rows.astype(xp.float32),
                      in_cols.astype(xp.float32))
  return (covered > 0).astype(xp.float32)


def sample_hole_masks(key, batch_size, height, width, *, num_patches=4, patch_size=32):
  """Draws `num_patches` squares per image at uniform positions (overlaps allowed).

  Returns:
    float32 [batch_size, height, width, 1], 1 inside the holes.
  """
  key_y, key_x = jax.random.split(key)
  shape = (batch_size, num_patches, 1)
  corner_y = jax.random.randint(key_y, shape, 0, height - patch_size + 1)
  corner_x = jax.random.randint(key_x, shape, 0, width - patch_size + 1)
  corners = jnp.concatenate([corner_y, corner_x], axis=-1)
  return _squares_from_corners(corners, height, width, patch_size, jnp)[..., None]


def eval_hole_mask(seed, index, height, width, *, num_patches=4, patch_size=32):
  """The eval mask of image `index`: numpy default_rng([seed, index]) corners.

  The same definition as the album-covers-dev baselines: `integers(0, H - size + 1,
  (num_patches, 2))` as (y, x) corners. Returns float32 [height, width, 1].
  """
  rng = np.random.default_rng([seed, index])
  # A scalar bound for square images keeps the stream identical to the baselines'.
  high = (height - patch_size + 1 if height == width
          else np.array([height, width]) - patch_size + 1)
  corners = rng.integers(0, high, (num_patches, 2))
  return _squares_from_corners(corners, height, width, patch_size, np)[..., None]


def step_mask_key(base_key, step, *, fixed: bool):
  """The key the masks of `step` are drawn from: fixed mode reuses one key."""
  return base_key if fixed else jax.random.fold_in(base_key, step)
