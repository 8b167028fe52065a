"""The fast pooling / upsampling forms compute the same functions as the plain ones."""

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_inpaint.nn import models
from flax_inpaint.nn import ops


def _tied(shape, seed, dtype=jnp.float32):
  """Small integers after a ReLU: many ties inside 2x2 windows, zeros included."""
  rng = np.random.default_rng(seed)
  return jnp.asarray(np.maximum(rng.integers(-2, 3, shape), 0), dtype)


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_max_pool_reshape_equals_reduce_window_values_and_gradients(dtype):
  x = _tied((2, 6, 10, 3), 0, dtype)
  cotangent = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 5, 3)), dtype)
  outs, grads = {}, {}
  for impl in ops.POOL_IMPLS:
    outs[impl], vjp = jax.vjp(lambda v, impl=impl: ops.max_pool_2x2(v, impl), x)
    (grads[impl],) = vjp(cotangent)
  assert float(jnp.mean((x > 0).astype(jnp.float32))) < 0.5  # Ties do occur.
  np.testing.assert_array_equal(
      np.asarray(outs['reshape'], np.float32), np.asarray(outs['reduce_window'], np.float32)
  )
  # Ties: each window's gradient goes to its first maximum, exactly as select-and-scatter.
  np.testing.assert_array_equal(
      np.asarray(grads['reshape'], np.float32), np.asarray(grads['reduce_window'], np.float32)
  )
  assert outs['reshape'].dtype == grads['reshape'].dtype == dtype


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_relu_from_output_equals_jax_relu_values_and_gradients(dtype):
  x = jnp.asarray(np.random.default_rng(6).integers(-3, 4, (5, 7)), dtype)  # Zeros too.
  cotangent = jnp.asarray(np.random.default_rng(7).normal(size=(5, 7)), dtype)
  results = {}
  for impl in ops.RELU_IMPLS:
    out, vjp = jax.vjp(lambda v, impl=impl: ops.relu(v, impl), x)
    results[impl] = (out, *vjp(cotangent))
  for got, want in zip(results['output'], results['input']):
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))
  np.testing.assert_array_equal(
      np.asarray(results['output'][1], np.float32),
      np.where(np.asarray(x, np.float32) > 0, np.asarray(cotangent, np.float32), 0),
  )
  # Second derivative (jvp of jvp) agrees too.
  second = {
      impl: jax.grad(
          lambda v, impl=impl: jax.grad(lambda u: jnp.sum(ops.relu(u, impl) ** 2))(v).sum()
      )(x.astype(jnp.float32))
      for impl in ops.RELU_IMPLS
  }
  np.testing.assert_array_equal(second['output'], second['input'])


def test_max_pool_gradient_picks_first_maximum_in_row_major_order():
  x = jnp.array([[3.0, 3.0], [3.0, 1.0]]).reshape(1, 2, 2, 1)
  grad = jax.grad(lambda v: ops.max_pool_2x2(v).sum())(x)
  np.testing.assert_array_equal(np.asarray(grad).reshape(2, 2), [[1.0, 0.0], [0.0, 0.0]])
  x = jnp.array([[0.0, 1.0], [5.0, 5.0]]).reshape(1, 2, 2, 1)
  grad = jax.grad(lambda v: ops.max_pool_2x2(v).sum())(x)
  np.testing.assert_array_equal(np.asarray(grad).reshape(2, 2), [[0.0, 0.0], [1.0, 0.0]])


def test_max_pool_rejects_odd_sizes():
  with pytest.raises(ValueError, match='even height and width'):
    ops.max_pool_2x2(jnp.zeros((1, 5, 4, 1)))


def test_upsample_repeat_equals_gather_values_and_gradients():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.integers(-50, 50, (2, 3, 5, 4)), jnp.float32)
  cotangent = jnp.asarray(rng.integers(-50, 50, (2, 6, 10, 4)), jnp.float32)
  outs, grads = {}, {}
  for impl in ('repeat', 'gather'):
    outs[impl], vjp = jax.vjp(lambda v, impl=impl: ops.upsample_nearest_2x(v, impl), x)
    (grads[impl],) = vjp(cotangent)
  np.testing.assert_array_equal(outs['repeat'], outs['gather'])
  np.testing.assert_array_equal(outs['repeat'][:, 2 * 1 + 1, 2 * 4], x[:, 1, 4])
  np.testing.assert_array_equal(grads['repeat'], grads['gather'])  # Integer sums: exact.


def test_subpixel_upsample_conv_matches_upsample_then_conv():
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 5, 7, 3)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(3, 3, 3, 4)), jnp.float32)
  bias = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
  cotangent = jnp.asarray(rng.normal(size=(2, 10, 14, 4)), jnp.float32)
  results = {}
  for impl in ops.UPSAMPLE_IMPLS:
    fn = lambda x, k, b, impl=impl: ops.upsample_conv_2x(x, k, b, impl)
    out, vjp = jax.vjp(fn, x, kernel, bias)
    results[impl] = (out, *vjp(cotangent))
  # float64 reference: upsample by index arithmetic, 'SAME' conv by explicit sums.
  up = np.asarray(x, np.float64).repeat(2, axis=1).repeat(2, axis=2)
  padded = np.pad(up, ((0, 0), (1, 1), (1, 1), (0, 0)))
  reference = np.asarray(bias, np.float64) + sum(
      np.einsum('bhwi,io->bhwo', padded[:, dy : dy + 10, dx : dx + 14], np.asarray(kernel)[dy, dx])
      for dy in range(3)
      for dx in range(3)
  )
  for impl, (out, *grads) in results.items():
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5, err_msg=impl)
    for got, want in zip(grads, results['gather'][1:]):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4, err_msg=impl)


def test_subpixel_kernel_phase_taps():
  kernel = jnp.arange(9.0).reshape(3, 3, 1, 1)  # k[r, c] = 3r + c
  phases = np.asarray(ops.subpixel_kernel(kernel))[:, :, 0, :]  # [2, 2, phase]
  k = np.arange(9.0).reshape(3, 3)
  rows = {0: [k[0], k[1] + k[2]], 1: [k[0] + k[1], k[2]]}
  for a in (0, 1):
    for b in (0, 1):
      want = np.array([[r[0], r[1] + r[2]] if b == 0 else [r[0] + r[1], r[2]] for r in rows[a]])
      np.testing.assert_array_equal(phases[:, :, 2 * a + b], want)


def test_unet_same_params_and_function_for_every_impl():
  rng = np.random.default_rng(4)
  image = jnp.asarray(rng.uniform(size=(2, 16, 16, 3)), jnp.float32)
  hole = jnp.asarray(rng.uniform(size=(2, 16, 16, 1)) > 0.7, jnp.float32)
  base = models.UNet(
      widths=(4, 8), pool_impl='reduce_window', upsample_impl='gather', relu_impl='input'
  )
  params = base.init(jax.random.key(0), image, hole)['params']
  # nn.Conv's automatic names (2 upsample convs, the 1x1 output conv): checkpoints of
  # the plain U-Net restore into every impl.
  assert set(params) == {f'Conv_{i}' for i in range(3)} | {f'ConvNormRelu_{i}' for i in range(12)}
  assert params['Conv_0']['kernel'].shape == (3, 3, 16, 8)
  assert params['Conv_2']['kernel'].shape == (1, 1, 4, 3)
  want = base.apply({'params': params}, image, hole)
  for pool, upsample, relu, channels in itertools.product(
      ops.POOL_IMPLS, ops.UPSAMPLE_IMPLS, ops.RELU_IMPLS, (4, 8)
  ):
    model = models.UNet(
        widths=(4, 8),
        pool_impl=pool,
        upsample_impl=upsample,
        relu_impl=relu,
        input_channels=channels,
    )
    fresh = model.init(jax.random.key(0), image, hole)['params']
    jax.tree.map(np.testing.assert_array_equal, fresh, params)  # Same init, same tree.
    np.testing.assert_allclose(
        model.apply({'params': params}, image, hole),
        want,
        rtol=1e-5,
        atol=1e-6,
        err_msg=f'{pool}/{upsample}/{relu}/{channels}',
    )


@pytest.mark.parametrize('use_bias', [True, False])
def test_padded_input_conv_equals_conv_values_and_gradients(use_bias):
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.normal(size=(2, 8, 8, 4)), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(2, 8, 8, 5)), jnp.float32)
  plain = nn.Conv(5, (3, 3), use_bias=use_bias)
  padded = ops.PaddedInputConv(5, 8, use_bias)
  params = plain.init(jax.random.key(1), x)['params']
  jax.tree.map(np.testing.assert_array_equal, padded.init(jax.random.key(1), x)['params'], params)
  if use_bias:  # A nonzero bias, so its gradient and its add are checked too.
    params = {**params, 'bias': jnp.asarray(rng.normal(size=5), jnp.float32)}

  def value_and_grads(module):
    loss = lambda p, x: jnp.sum(module.apply({'params': p}, x) * weights)
    return jax.value_and_grad(loss, argnums=(0, 1))(params, x)

  want_value, want_grads = value_and_grads(plain)
  value, grads = value_and_grads(padded)
  np.testing.assert_allclose(value, want_value, rtol=1e-5)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), grads, want_grads
  )
  with pytest.raises(ValueError, match='input_channels=3 is below the 4 input channels'):
    ops.PaddedInputConv(5, 3).init(jax.random.key(1), x)


def test_unet_input_channels_keeps_the_params_tree_with_batch_norm():
  image, hole = jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 16, 16, 1))
  trees = [
      jax.tree.map(
          jnp.shape,
          models.UNet(widths=(4, 8), norm='batch', input_channels=c).init(
              jax.random.key(0), image, hole
          ),
      )
      for c in (4, 8)
  ]
  assert trees[0] == trees[1]
  assert 'bias' not in trees[1]['params']['ConvNormRelu_0']['Conv_0']
