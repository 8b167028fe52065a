"""Losses against closed forms; perceptual loss behaviour and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_inpaint.config import schema
from flax_inpaint.nn import models
from flax_inpaint.nn import vgg16
from flax_inpaint.train import losses


def const(value, shape=(2, 8, 8, 3)):
  return jnp.full(shape, value, jnp.float32)


def half_hole(shape=(2, 8, 8, 1)):
  return jnp.zeros(shape).at[:, :4].set(1.0)  # Exactly half the pixels.


def test_l1_l2_closed_forms():
  assert float(losses.l1_loss(prediction=const(0.7), target=const(0.2))) == pytest.approx(0.5)
  assert float(losses.l2_loss(prediction=const(0.7), target=const(0.2))) == pytest.approx(0.25)
  weighted = losses.l1_loss(
      prediction=const(0.7),
      target=const(0.2),
      hole_mask=half_hole(),
      hole_weight=6.0,
      valid_weight=1.0,
  )
  assert float(weighted) == pytest.approx(0.5 * (6.0 * 0.5 + 1.0 * 0.5))
  weighted2 = losses.l2_loss(
      prediction=const(0.7),
      target=const(0.2),
      hole_mask=half_hole(),
      hole_weight=2.0,
      valid_weight=0.0,
  )
  assert float(weighted2) == pytest.approx(0.25 * 2.0 * 0.5)


def test_total_variation_closed_form():
  ramp = jnp.broadcast_to(jnp.arange(8.0)[None, None, :, None] * 0.1, (2, 8, 8, 3))
  assert float(losses.total_variation(image=ramp)) == pytest.approx(0.1, rel=1e-5)  # float32
  assert float(losses.total_variation(image=const(0.3))) == 0.0
  checker = (jnp.indices((8, 8)).sum(0) % 2).astype(jnp.float32)[None, ..., None]
  assert float(losses.total_variation(image=checker)) == pytest.approx(2.0)


def test_gram_matrix_closed_form():
  features = jnp.ones((1, 2, 3, 4)) * 2.0
  gram = losses.gram_matrix(features)
  np.testing.assert_allclose(gram, jnp.full((1, 4, 4), 4.0 * 6 / (4 * 6)), rtol=1e-6)


def loss_config(**overrides):
  config = schema.get_config().loss
  config.vgg_weights = 'random'
  config.perceptual_layers = ('relu1_2', 'relu2_2')
  config.perceptual_layer_weights = (1.0, 0.5)
  for k, v in overrides.items():
    config[k] = v
  return config


def test_total_is_the_sum_of_weighted_terms():
  rng = np.random.default_rng(0)
  pred, target = (jnp.asarray(rng.random((2, 16, 16, 3)), jnp.float32) for _ in range(2))
  hole = half_hole((2, 16, 16, 1))
  cfg = loss_config(l1_weight=2.0, l2_weight=3.0, tv_weight=0.5, perceptual_weight=0.0)
  loss, terms = losses.total_loss(prediction=pred, target=target, hole_mask=hole, loss_config=cfg)
  comp = models.composite(pred, target, hole)
  assert float(terms['l1']) == pytest.approx(2.0 * float(jnp.mean(jnp.abs(pred - target))))
  assert float(terms['l2']) == pytest.approx(3.0 * float(jnp.mean((pred - target) ** 2)), rel=1e-5)
  assert float(terms['tv']) == pytest.approx(0.5 * float(losses.total_variation(image=comp)))
  assert float(loss) == pytest.approx(float(terms['l1'] + terms['l2'] + terms['tv']))
  assert 'perceptual' not in terms


@pytest.fixture(scope='module')
def vgg_params():
  return vgg16.init_random_params(0)


def test_perceptual_zero_for_identical_positive_otherwise(vgg_params):
  rng = np.random.default_rng(1)
  image = jnp.asarray(rng.random((2, 16, 16, 3)), jnp.float32)
  other = jnp.asarray(rng.random((2, 16, 16, 3)), jnp.float32)
  same, style_same = losses.perceptual_and_style(
      vgg_params=vgg_params, prediction=image, target=image, composite=image, with_style=True
  )
  # Zero up to rounding: the target goes through the VGG in a batch of its own, and XLA's
  # CPU convolutions may sum in another order for another batch size (1.8e-6 on CI's CPU).
  assert abs(float(same)) < 1e-5 and abs(float(style_same)) < 1e-5
  for single_pass in (False, True):
    diff, style = losses.perceptual_and_style(
        vgg_params=vgg_params,
        prediction=other,
        target=image,
        composite=image,
        with_style=True,
        single_pass=single_pass,
    )
    assert float(diff) > 0.0 and float(style) > 0.0


def test_single_pass_equals_split_passes(vgg_params):
  rng = np.random.default_rng(2)
  a, b, c = (jnp.asarray(rng.random((2, 16, 16, 3)), jnp.float32) for _ in range(3))
  split = losses.perceptual_and_style(
      vgg_params=vgg_params, prediction=a, target=b, composite=c, with_style=True
  )
  fused = losses.perceptual_and_style(
      vgg_params=vgg_params, prediction=a, target=b, composite=c, with_style=True, single_pass=True
  )
  np.testing.assert_allclose(split, fused, rtol=1e-5)


def test_gradient_reaches_unet_never_vgg(vgg_params):
  model = models.UNet(widths=(4, 8))
  rng = np.random.default_rng(3)
  image = jnp.asarray(rng.random((2, 16, 16, 3)), jnp.float32)
  hole = half_hole((2, 16, 16, 1))
  params = model.init(jax.random.key(0), image, hole)['params']
  cfg = loss_config(l1_weight=0.0, tv_weight=0.0, perceptual_weight=1.0)

  def loss_of(unet_params, frozen):
    pred = model.apply({'params': unet_params}, models.mask_image(image, hole), hole)
    return losses.total_loss(
        prediction=pred, target=image, hole_mask=hole, loss_config=cfg, vgg_params=frozen
    )[0]

  unet_grads, vgg_grads = jax.grad(loss_of, argnums=(0, 1))(params, vgg_params)
  assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(unet_grads)) > 0
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(vgg_grads))


def test_bf16_features_close_to_float32(vgg_params):
  rng = np.random.default_rng(4)
  image = jnp.asarray(rng.random((2, 32, 32, 3)), jnp.float32)
  taps = ('relu1_2', 'relu2_2', 'relu3_3')
  f32 = vgg16.vgg16_features(vgg_params, image, taps)
  bf16 = vgg16.vgg16_features(vgg_params, image, taps, dtype=jnp.bfloat16)
  for tap in taps:
    assert bf16[tap].dtype == jnp.bfloat16
    ref = np.asarray(f32[tap], np.float64)
    rel = np.linalg.norm(np.asarray(bf16[tap], np.float64) - ref) / np.linalg.norm(ref)
    assert rel <= 1e-2, (tap, rel)
