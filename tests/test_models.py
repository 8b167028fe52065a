"""U-Net shapes, parameter counts per size, output range, composite."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_inpaint.config import schema
from flax_inpaint.nn import models


def conv_params(k, cin, cout, bias=True):
  return k * k * cin * cout + (cout if bias else 0)


def expected_unet_params(widths, bottleneck='dilated'):
  """Closed-form count of the U-Net's parameters (no norm, resize upsampling)."""
  total, cin = 0, 4
  for w in widths:
    total += conv_params(3, cin, w) + conv_params(3, w, w)
    cin = w
  b = 2 * widths[-1]
  if bottleneck == 'dilated':
    total += conv_params(3, cin, b) + 3 * conv_params(3, b, b)
  else:
    total += conv_params(3, cin, b) + conv_params(3, b, b)
  cin = b
  for w in reversed(widths):
    total += conv_params(3, cin, w)  # upsample conv
    total += conv_params(3, 2 * w, w) + conv_params(3, w, w)
    cin = w
  return total + conv_params(1, cin, 3)


def count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize('size', ['small', 'medium', 'large'])
@pytest.mark.parametrize('bottleneck', ['plain', 'dilated'])
def test_param_counts_and_shapes(size, bottleneck):
  full = schema.get_config()
  config = full.model
  config.size, config.bottleneck = size, bottleneck
  model = models.create_model(config, full.impl)
  hw = models.size_multiple(config) * 2
  images = jnp.zeros((2, hw, hw, 3))
  holes = jnp.zeros((2, hw, hw, 1))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), images, holes))
  assert count(variables['params']) == expected_unet_params(models.WIDTHS[size], bottleneck)
  out = jax.eval_shape(lambda v: model.apply(v, images, holes), variables)
  assert out.shape == (2, hw, hw, 3) and out.dtype == jnp.float32


def test_small_is_the_seeds_small_unet():
  assert models.WIDTHS['small'] == (32, 64, 128, 256)
  assert models.WIDTHS['medium'] == (64, 128, 256, 512)
  assert len(models.WIDTHS['large']) == 5
  assert expected_unet_params(models.WIDTHS['small']) == 13_350_467


@pytest.mark.parametrize(
    'norm,upsample,dtype', [('batch', 'transpose', 'float32'), ('none', 'resize', 'bfloat16')]
)
def test_variants_run_and_output_in_unit_range(norm, upsample, dtype):
  full = schema.get_config()
  config = full.model
  config.size, config.norm, config.upsample, config.dtype = 'tiny', norm, upsample, dtype
  model = models.create_model(config, full.impl)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.random((2, 16, 16, 3)), jnp.float32)
  holes = jnp.zeros((2, 16, 16, 1)).at[:, 4:8, 4:8].set(1.0)
  variables = model.init(jax.random.key(0), images, holes, train=False)
  assert ('batch_stats' in variables) == (norm == 'batch')
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables['params']))
  if norm == 'batch':
    out, updates = model.apply(variables, images, holes, train=True, mutable=['batch_stats'])
    assert 'batch_stats' in updates
  else:
    out = model.apply(variables, images, holes, train=True)
  assert out.shape == (2, 16, 16, 3) and out.dtype == jnp.float32
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_composite_and_mask_image():
  image = jnp.full((1, 4, 4, 3), 0.25)
  prediction = jnp.full((1, 4, 4, 3), 0.75)
  hole = jnp.zeros((1, 4, 4, 1)).at[:, 1:3, 1:3].set(1.0)
  comp = models.composite(prediction, image, hole)
  np.testing.assert_array_equal(comp[0, 1:3, 1:3], 0.75)
  np.testing.assert_array_equal(comp[0, 0], 0.25)
  masked = models.mask_image(image, hole)
  np.testing.assert_array_equal(masked[0, 1:3, 1:3], 0.0)
  np.testing.assert_array_equal(masked[0, 3], 0.25)
