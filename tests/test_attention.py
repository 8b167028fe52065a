"""Contextual attention (nn/attention.py) against closed forms, and a U-Net with it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_inpaint.nn import attention
from flax_inpaint.nn import fills
from flax_inpaint.nn import models


def test_space_to_depth_round_trips_and_keeps_blocks_together():
  x = np.arange(2 * 8 * 12 * 3, dtype=np.float32).reshape(2, 8, 12, 3)
  depth = attention.space_to_depth(jnp.asarray(x), 4)
  assert depth.shape == (2, 2, 3, 48)
  np.testing.assert_array_equal(depth[1, 1, 2].reshape(4, 4, 3), x[1, 4:8, 8:12])
  np.testing.assert_array_equal(attention.depth_to_space(depth, 4), x)


def test_known_blocks_are_those_without_a_hole_pixel():
  hole = np.zeros((1, 8, 8, 1), np.float32)
  hole[0, 5, 2] = 1.0  # One pixel in block (1, 0).
  np.testing.assert_array_equal(attention.known_blocks(jnp.asarray(hole), 4)[0], [[1, 1], [0, 1]])


def features_with_a_repeated_patch(seed=0):
  """6x6 random features whose 3x3 patch around (4, 4) repeats the one around (1, 1)."""
  features = np.random.default_rng(seed).normal(size=(1, 6, 6, 4)).astype(np.float32)
  features[0, 3:6, 3:6] = features[0, 0:3, 0:3]
  return features


def test_attention_copies_the_value_of_the_exactly_matching_known_patch():
  features = features_with_a_repeated_patch()
  values = np.arange(36 * 2, dtype=np.float32).reshape(1, 6, 6, 2)
  known = np.ones((1, 6, 6), np.float32)
  known[0, 1, 1] = 0.0  # The query itself may not copy itself.
  out = attention.attend(jnp.asarray(features), jnp.asarray(known), jnp.asarray(values), 1e3)
  np.testing.assert_allclose(out[0, 1, 1], values[0, 4, 4], rtol=1e-6)


def test_attention_never_copies_an_unknown_position():
  features = features_with_a_repeated_patch()
  values = np.zeros((1, 6, 6, 1), np.float32)
  known = np.ones((1, 6, 6), np.float32)
  known[0, 4, 4] = known[0, 1, 1] = 0.0  # The perfect match is in a hole now.
  values[0, 4, 4] = values[0, 1, 1] = 1e6
  out = attention.attend(jnp.asarray(features), jnp.asarray(known), jnp.asarray(values), 1e3)
  assert float(jnp.max(out)) == 0.0


def test_a_flat_softmax_copies_the_mean_of_the_known_blocks():
  """Scale 0: every known block weighs the same, so each pixel is the mean of the known
  blocks' pixels at its offset in the block."""
  rng = np.random.default_rng(1)
  image = rng.random((1, 16, 16, 3)).astype(np.float32)
  hole = np.zeros((1, 16, 16, 1), np.float32)
  hole[0, 2:6, 9:14] = 1.0  # Touches blocks (0, 2), (0, 3), (1, 2), (1, 3).
  features = rng.normal(size=(1, 4, 4, 5)).astype(np.float32)
  copied = attention.copy_from_known(jnp.asarray(features), jnp.asarray(image), hole, 0.0)
  blocks = image[0].reshape(4, 4, 4, 4, 3).transpose(0, 2, 1, 3, 4)  # [by, bx, y, x, c]
  known = np.ones((4, 4), bool)
  known[0:2, 2:4] = False
  expected = blocks[known].mean(axis=0)  # [4, 4, 3]: the mean block.
  np.testing.assert_allclose(copied[0], np.tile(expected, (4, 4, 1)), rtol=1e-5)


def test_without_a_known_position_the_copy_is_finite():
  features = jnp.ones((1, 3, 3, 2))
  out = attention.attend(features, jnp.zeros((1, 3, 3)), jnp.ones((1, 3, 3, 1)), 10.0)
  np.testing.assert_allclose(out, 1.0)


def test_query_chunks_give_the_scores_of_one_matrix(monkeypatch):
  rng = np.random.default_rng(2)
  features = jnp.asarray(rng.normal(size=(2, 5, 7, 3)), jnp.float32)
  known = jnp.asarray(rng.random((2, 5, 7)) < 0.6, jnp.float32)
  values = jnp.asarray(rng.random((2, 5, 7, 4)), jnp.float32)
  whole = attention.attend(features, known, values, 10.0)
  monkeypatch.setattr(attention, 'QUERY_CHUNK', 8)  # 35 positions: 5 chunks, the last padded.
  np.testing.assert_allclose(attention.attend(features, known, values, 10.0), whole, atol=1e-6)


@pytest.mark.parametrize('coarse_fill', ['none', 'pushpull'])
def test_a_unet_with_attention_starts_as_the_one_without(coarse_fill):
  """The gate starts at zero: given the other model's params, the same output; the gate
  and the softmax scale are its only new params."""
  kwargs = dict(widths=(4, 8, 8), bottleneck='plain', coarse_fill=coarse_fill)
  with_attention = models.UNet(attention='contextual', **kwargs)
  without = models.UNet(**kwargs)
  rng = np.random.default_rng(3)
  image = jnp.asarray(rng.random((2, 32, 32, 3)), jnp.float32)
  hole = jnp.zeros((2, 32, 32, 1)).at[:, 8:20, 4:24].set(1.0)
  masked = models.mask_image(image, hole)
  params = without.init(jax.random.key(0), masked, hole)['params']
  fresh = with_attention.init(jax.random.key(1), masked, hole)['params']
  assert set(fresh) - set(params) == {'attention_gate', 'attention_scale'}
  merged = {**fresh, **params}
  apply_with, apply_without = jax.jit(with_attention.apply), jax.jit(without.apply)
  closed, reference = apply_with({'params': merged}, masked, hole), apply_without(
      {'params': params}, masked, hole
  )
  np.testing.assert_array_equal(closed, reference)
  # An open gate pastes the copy into the holes (pushpull: only there).
  merged['attention_gate'] = {'kernel': jnp.zeros((1, 1, 4, 1)), 'bias': jnp.ones((1,))}
  opened = apply_with({'params': merged}, masked, hole)
  assert not np.allclose(opened, reference)
  if coarse_fill == 'pushpull':
    np.testing.assert_array_equal(
        (opened * (1 - hole))[hole[..., 0] == 0], masked[hole[..., 0] == 0]
    )


def test_an_export_of_a_model_with_attention_runs_any_window_as_in_process():
  from flax_inpaint.modes import export
  from flax_inpaint.train import steps

  model = models.UNet(
      widths=(4, 8), bottleneck='plain', coarse_fill='pushpull', attention='contextual'
  )
  variables = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 16, 16, 1)))
  variables = jax.tree.map(lambda x: x + 0.1, variables)  # The gate open a little.
  program, leaves = export.export_program(model, variables, 4, platforms=('cpu',))
  exported = jax.export.deserialize(bytearray(program))
  rng = np.random.default_rng(4)
  for height, width in [(16, 24), (32, 20)]:
    images = rng.integers(0, 256, (2, height, width, 3), np.uint8)
    holes = rng.random((2, height, width)) < 0.3
    fill = fills.pushpull_uint8(images, holes)
    np.testing.assert_allclose(
        exported.call(leaves, images, holes, fill),
        steps.make_uint8_predict_fn(model)(variables, images, holes),
        atol=1e-5,
    )
