"""Pure, jit-able inpainting losses. Images are NHWC in [0, 1]; hole masks 1 = hole.

Every loss is keyword-only; `total_loss` returns (loss, dict of weighted terms).
"""

from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp

from flax_inpaint.nn import models
from flax_inpaint.nn import vgg16


def _weighted_mean(error, hole_mask, hole_weight, valid_weight):
  if hole_mask is not None:
    error = error * (hole_weight * hole_mask + valid_weight * (1.0 - hole_mask))
  return jnp.mean(error)


def l1_loss(*, prediction, target, hole_mask=None, hole_weight=1.0, valid_weight=1.0):
  """Mean of w * |prediction - target|, w = hole_weight in holes, valid_weight outside."""
  error = jnp.abs(prediction.astype(jnp.float32) - target.astype(jnp.float32))
  return _weighted_mean(error, hole_mask, hole_weight, valid_weight)


def l2_loss(*, prediction, target, hole_mask=None, hole_weight=1.0, valid_weight=1.0):
  """Mean of w * (prediction - target)^2, weighted as `l1_loss`."""
  error = jnp.square(prediction.astype(jnp.float32) - target.astype(jnp.float32))
  return _weighted_mean(error, hole_mask, hole_weight, valid_weight)


def total_variation(*, image):
  """Anisotropic TV: mean |vertical diff| + mean |horizontal diff|."""
  image = image.astype(jnp.float32)
  return jnp.mean(jnp.abs(image[:, 1:] - image[:, :-1])) + jnp.mean(
      jnp.abs(image[:, :, 1:] - image[:, :, :-1])
  )


def gram_matrix(features):
  """[B, H, W, C] -> [B, C, C], normalised by C * H * W (float32 accumulation)."""
  _, height, width, channels = features.shape
  gram = jnp.einsum('bhwc,bhwd->bcd', features, features, preferred_element_type=jnp.float32)
  return gram / (channels * height * width)


def _distance(a, b, kind):
  diff = a.astype(jnp.float32) - b.astype(jnp.float32)
  return jnp.mean(jnp.abs(diff)) if kind == 'l1' else jnp.mean(jnp.square(diff))


def perceptual_and_style(
    *,
    vgg_params,
    prediction,
    target,
    composite=None,
    layers=('relu1_2', 'relu2_2', 'relu3_3'),
    layer_weights=None,
    distance='l1',
    dtype=jnp.float32,
    with_style=False,
    single_pass=False,
    vgg_options=None,
):
  """Perceptual (and style) loss on VGG16 features.

  The target's features carry no gradient; `vgg_params` never receive one. The
  prediction and composite go through the VGG in one pass (concatenated on the batch
  axis). `single_pass` adds the target to that pass too: one larger batch, but the
  backward pass then also runs over the target's third (+10% FLOPs on the reference).
  `vgg_options`: VGG16Features attributes (pool_impl, relu_impl, input_channels).

  Returns:
    (perceptual, style): sums over layers of weighted mean feature distances, and of
    mean |Gram(x) - Gram(target)| (0 unless `with_style`).
  """
  layer_weights = layer_weights or (1.0,) * len(layers)
  vgg_params = jax.lax.stop_gradient(vgg_params)
  target = jax.lax.stop_gradient(target)
  inputs = [prediction] + ([composite] if composite is not None else [])
  extract = lambda x: vgg16.vgg16_features(
      vgg_params, x, layers, dtype=dtype, **(vgg_options or {})
  )
  if single_pass:
    features = extract(jnp.concatenate(inputs + [target], axis=0))
    split = {k: jnp.split(v, len(inputs) + 1, axis=0) for k, v in features.items()}
    target_features = {k: jax.lax.stop_gradient(v[-1]) for k, v in split.items()}
    input_features = {k: v[:-1] for k, v in split.items()}
  else:
    target_features = jax.lax.stop_gradient(extract(target))
    features = extract(jnp.concatenate(inputs, axis=0))
    input_features = {k: jnp.split(v, len(inputs), axis=0) for k, v in features.items()}
  perceptual = style = jnp.float32(0.0)
  for layer, weight in zip(layers, layer_weights):
    reference = target_features[layer]
    for part in input_features[layer]:
      perceptual += weight * _distance(part, reference, distance)
      if with_style:
        style += weight * jnp.mean(jnp.abs(gram_matrix(part) - gram_matrix(reference)))
  return perceptual, style


# ----------------------------------------------------------------------------------
# Adversarial terms (LaMa's non-saturating loss with R1): for the discriminator a photo is
# real everywhere, and a repaired image is fake where its patches hold painted pixels.


def hole_fraction_at(hole_mask, scale: int):
  """[B, H, W, 1] hole masks -> [B, H / scale, W / scale, 1]: each patch's hole fraction,
  the discriminator's fake target at its logits' resolution."""
  batch, height, width, channels = hole_mask.shape
  patches = hole_mask.reshape(batch, height // scale, scale, width // scale, scale, channels)
  return patches.astype(jnp.float32).mean(axis=(2, 4))


def discriminator_loss(*, real_logits, fake_logits, fake_holes):
  """Mean softplus(-real) over a photo's logits, plus, over a repaired image's,
  softplus(fake) weighted by each patch's hole fraction and softplus(-fake) by the rest."""
  real = jnp.mean(jax.nn.softplus(-real_logits))
  fake = jnp.mean(
      fake_holes * jax.nn.softplus(fake_logits) + (1.0 - fake_holes) * jax.nn.softplus(-fake_logits)
  )
  return real + fake


def generator_adversarial_loss(*, fake_logits, fake_holes):
  """The non-saturating generator loss softplus(-fake), averaged over the painted patches
  (weighted by their hole fraction)."""
  weighted = jnp.sum(fake_holes * jax.nn.softplus(-fake_logits))
  return weighted / jnp.maximum(jnp.sum(fake_holes), 1.0)


def feature_matching_loss(*, fake_features, real_features):
  """Mean over the discriminator's layers of the mean squared difference between its
  activations on the repaired image and on the photo (no gradient into the photo's)."""
  return jnp.mean(
      jnp.stack(
          [
              jnp.mean(jnp.square(fake - jax.lax.stop_gradient(real)))
              for fake, real in zip(fake_features, real_features)
          ]
      )
  )


def r1_penalty(real_gradients):
  """R1 (Mescheder et al. 2018): half the squared norm of the discriminator's gradient at
  the photos, summed per image, averaged over the batch."""
  return 0.5 * jnp.mean(jnp.sum(jnp.square(real_gradients), axis=(1, 2, 3)))


def vgg_options(config) -> dict:
  """VGG16Features attributes for the loss, from the resolved config: its dtype from
  `loss.vgg_dtype`, how it pools, differentiates ReLU and pads its input from `impl`."""
  return {
      'dtype': jnp.dtype(config.loss.vgg_dtype),
      'pool_impl': config.impl.pool,
      'relu_impl': config.impl.relu,
      'input_channels': config.impl.vgg_input_channels,
  }


def total_loss(
    *,
    prediction,
    target,
    hole_mask,
    loss_config: Mapping[str, Any],
    vgg_params: Optional[Any] = None,
    vgg_options: Optional[Mapping[str, Any]] = None,
):
  """The weighted training loss.

  Args:
    prediction: the network output [B, H, W, 3] in [0, 1].
    target: the original image.
    hole_mask: [B, H, W, 1], 1 = hole.
    loss_config: the resolved `config.loss` section (term weights, VGG16 taps).
    vgg_params: frozen VGG16 params; required when a VGG term has nonzero weight.
    vgg_options: VGG16Features attributes (`vgg_options(config)`).

  Returns:
    (loss, terms): the scalar loss and each weighted term plus 'loss'.
  """
  c = loss_config
  comp = models.composite(prediction, target, hole_mask)
  pixel = dict(
      prediction=prediction,
      target=target,
      hole_mask=hole_mask,
      hole_weight=c['hole_weight'],
      valid_weight=c['valid_weight'],
  )
  terms = {}
  if c['l1_weight']:
    terms['l1'] = c['l1_weight'] * l1_loss(**pixel)
  if c['l2_weight']:
    terms['l2'] = c['l2_weight'] * l2_loss(**pixel)
  if c['tv_weight']:
    terms['tv'] = c['tv_weight'] * total_variation(image=comp)
  if c['perceptual_weight'] or c['style_weight']:
    if vgg_params is None:
      raise ValueError('loss.perceptual_weight/style_weight > 0 need VGG16 params')
    options = dict(vgg_options or {})
    perceptual, style = perceptual_and_style(
        vgg_params=vgg_params,
        prediction=prediction,
        target=target,
        composite=comp if c['perceptual_on_composite'] else None,
        layers=tuple(c['perceptual_layers']),
        layer_weights=tuple(c['perceptual_layer_weights']),
        distance=c['perceptual_distance'],
        dtype=options.pop('dtype', jnp.float32),
        with_style=bool(c['style_weight']),
        single_pass=bool(c['vgg_single_pass']),
        vgg_options=options,
    )
    if c['perceptual_weight']:
      terms['perceptual'] = c['perceptual_weight'] * perceptual
    if c['style_weight']:
      terms['style'] = c['style_weight'] * style
  loss = sum(terms.values(), jnp.float32(0.0))
  return loss, {**terms, 'loss': loss}
