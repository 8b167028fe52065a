"""VGG16 features (linen): the perceptual loss's and LPIPS's network."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from flax_inpaint import errors
from flax_inpaint.nn import ops

# (block, convs per block, width): torchvision's `features` layout.
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))


CONV_NAMES = tuple(f'conv{b}_{i}' for b, n, _ in BLOCKS for i in range(1, n + 1))


TAPS = tuple(f'relu{b}_{n}' for b, n, _ in BLOCKS) + tuple(f'pool{b}' for b, _, _ in BLOCKS)


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)


IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _tap_depth(tap: str) -> int:
  if tap not in TAPS:
    raise ValueError(f'Unknown VGG16 tap {tap!r}; known taps: {", ".join(TAPS)}')
  kind, block = tap[:4], int(tap[4])
  return 2 * block + (kind == 'pool')


class VGG16Features(nn.Module):
  """VGG16 conv features up to the deepest tap asked for.

  Attributes:
    taps: names of the outputs to return (relu1_2 .. relu5_3, pool1 .. pool5).
    dtype: compute dtype (accumulation stays float32 in the loss).
    pool_impl: how max pooling is computed (`ops.POOL_IMPLS`; same values and gradients).
    relu_impl: how ReLU is differentiated (`ops.RELU_IMPLS`; same values and gradients).
    input_channels: zero-pad the normalised image's channels and conv1_1's kernel to this
      many (>= 3): the same features, faster conv kernels on GPUs; params unchanged.
  """

  taps: Sequence[str] = ('relu1_2', 'relu2_2', 'relu3_3')
  dtype: Any = jnp.float32
  pool_impl: str = 'reshape'
  relu_impl: str = 'output'
  input_channels: int = 3

  @nn.compact
  def __call__(self, images):
    deepest = max(_tap_depth(t) for t in self.taps)
    scale = self.param('input_scale', lambda _: jnp.asarray(1.0 / IMAGENET_STD))
    offset = self.param('input_offset', lambda _: jnp.asarray(-IMAGENET_MEAN / IMAGENET_STD))
    x = (images * scale + offset).astype(self.dtype)
    features = {}
    for block, num_convs, width in BLOCKS:
      if 2 * block > deepest:
        break
      for i in range(1, num_convs + 1):
        conv = (
            ops.PaddedInputConv(width, self.input_channels, dtype=self.dtype, name='conv1_1')
            if (block, i) == (1, 1) and self.input_channels != 3
            else nn.Conv(width, (3, 3), padding=1, dtype=self.dtype, name=f'conv{block}_{i}')
        )
        x = ops.relu(conv(x), self.relu_impl)
      features[f'relu{block}_{num_convs}'] = x
      if 2 * block + 1 > deepest:
        break
      x = ops.max_pool_2x2(x, self.pool_impl)
      features[f'pool{block}'] = x
    return {tap: features[tap] for tap in self.taps}


def params_from_convs(convs, input_scale, input_offset):
  """convs: list of 13 (HWIO kernel, bias) pairs in layer order."""
  params = {
      'input_scale': np.asarray(input_scale, np.float32),
      'input_offset': np.asarray(input_offset, np.float32),
  }
  expected_in = 3
  for name, (kernel, bias), (_, _, width) in zip(
      CONV_NAMES, convs, [b for b in BLOCKS for _ in range(b[1])]
  ):
    want = (3, 3, expected_in, width)
    if kernel.shape != want or bias.shape != (width,):
      raise errors.WeightsError(
          f'{name}: kernel {kernel.shape} / bias {bias.shape}, '
          f'expected {want} / ({width},): not VGG16 weights'
      )
    params[name] = {'kernel': np.asarray(kernel, np.float32), 'bias': np.asarray(bias, np.float32)}
    expected_in = width
  return params


def init_random_params(seed: int = 0):
  """Random VGG16 params for tests and benchmarks, never for training.

  He-normal kernels (activations keep their scale through the ReLUs) and biases uniform in
  +-1/sqrt(fan_in), as torch draws them. Drawn with numpy on the host: no device work and
  no op-by-op compiles, so a benchmark's start-up is what main.py's would be.
  """
  rng = np.random.default_rng(seed)
  convs = []
  fan_in_channels = 3
  for _, num_convs, width in BLOCKS:
    for _ in range(num_convs):
      fan_in = 9 * fan_in_channels
      kernel = rng.standard_normal((3, 3, fan_in_channels, width), np.float32)
      kernel *= np.float32(np.sqrt(2.0 / fan_in))
      bound = 1.0 / np.sqrt(fan_in)
      convs.append((kernel, rng.uniform(-bound, bound, width).astype(np.float32)))
      fan_in_channels = width
  return params_from_convs(convs, 1.0 / IMAGENET_STD, -IMAGENET_MEAN / IMAGENET_STD)


def vgg16_features(
    params, images, taps=('relu1_2', 'relu2_2', 'relu3_3'), dtype=jnp.float32, **options
):
  """Features of `images` (NHWC, [0, 1]) at the named taps, as a dict.

  `options`: more VGG16Features attributes (pool_impl, relu_impl, input_channels).
  """
  return VGG16Features(taps=tuple(taps), dtype=dtype, **options).apply({'params': params}, images)
