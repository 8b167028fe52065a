"""Parameter-free coarse fills: pure JAX, no params, the same in training and inference.

`pushpull` fills holes from a pyramid of averages of the valid pixels (the push-pull of
Gortler et al. 1996): pull averages the valid pixels of each 2x2 block, level by level down
to 1x1; push goes back up, each level's pixels keeping their own average where their block
had any valid pixel, and taking the coarser level's (bilinearly upsampled) value where it
had none. It is smooth, exact outside the holes, and on album covers
beats OpenCV's Telea and Navier-Stokes in hole PSNR (BENCHMARKS.md), so a U-Net that starts
from it (`model.coarse_fill='pushpull'`) only has to learn a correction.
"""

import jax
import jax.numpy as jnp

# `model.coarse_fill` values: what the U-Net starts from.
COARSE_FILLS = ('none', 'pushpull')


def _pad_even(x):
  """Zero-pads H and W of [B, H, W, C] up to even sizes (zero weight: no valid pixels)."""
  _, height, width, _ = x.shape
  return jnp.pad(x, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)))


def _sum_2x2(x):
  batch, height, width, channels = x.shape
  return x.reshape(batch, height // 2, 2, width // 2, 2, channels).sum(axis=(2, 4))


def _pull(weighted, weight):
  """One level down: (premultiplied colour sums, valid-pixel counts) of the 2x2 blocks."""
  return _sum_2x2(_pad_even(weighted)), _sum_2x2(_pad_even(weight))


def _upsample(x, height, width):
  """2x bilinear (half-pixel centres, edges clamped), cropped to [height, width]."""
  batch, coarse_h, coarse_w, channels = x.shape
  up = jax.image.resize(x, (batch, 2 * coarse_h, 2 * coarse_w, channels), 'linear')
  return up[:, :height, :width]


def pushpull(image, hole_mask):
  """Fills the holes of `image` from the valid pixels around them.

  Args:
    image: float [B, H, W, C]; values in the holes are ignored.
    hole_mask: float [B, H, W, 1], 1 = hole (values in between weigh the pixel partly).

  Returns:
    float32 [B, H, W, C]: `image` outside the holes, the push-pull fill inside. An image
    without a valid pixel comes back as zeros.
  """
  image = image.astype(jnp.float32)
  weight = 1.0 - hole_mask.astype(jnp.float32)
  levels = [(image * weight, weight)]
  while levels[-1][1].shape[1] > 1 or levels[-1][1].shape[2] > 1:
    levels.append(_pull(*levels[-1]))
  weighted, weight = levels[-1]
  filled = weighted / jnp.maximum(weight, 1e-12)
  for weighted, weight in reversed(levels[:-1]):
    height, width = weight.shape[1:3]
    # A block with a valid pixel keeps its own average (a whole one, at level 0, keeps its
    # value exactly). On album covers this beats weighing it by its valid share (17.60 dB
    # against 16.93 dB hole PSNR, val squares), and bilinear upsampling beats nearest (16.26).
    own = weighted / jnp.maximum(weight, 1e-12)
    share = jnp.clip(weight, 0.0, 1.0)
    filled = share * own + (1.0 - share) * _upsample(filled, height, width)
  return filled


# For numpy callers (the eval baseline, the page's method choice): one compile per shape.
pushpull_jit = jax.jit(pushpull)


@jax.jit
def pushpull_uint8(images, holes):
  """The push-pull fill a model with `coarse_fill='pushpull'` starts from, for an
  inference window as the host sends it: uint8 [B, H, W, 3] images, bool [B, H, W] holes
  -> float32 [B, H, W, 3]. An export runs it before its program (whose shapes are symbolic,
  which the pyramid's depth cannot be) and hands the result in as the model's `fill`."""
  hole_mask = holes[..., None].astype(jnp.float32)
  images = images.astype(jnp.float32) / 255.0
  return pushpull(images * (1.0 - hole_mask), hole_mask)
