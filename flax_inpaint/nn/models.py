"""The inpainting U-Net (linen, NHWC).

Input: the masked image (holes black) concatenated with the hole mask (1 = hole).
Output: an RGB prediction in [0, 1]; `composite` pastes it into the holes only.
With `coarse_fill='pushpull'` the U-Net sees the push-pull fill (fills.py) instead of black
holes and adds a correction to it inside the holes; the correction's last conv starts at
zero, so an untrained model returns the fill exactly.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from flax_inpaint.nn import attention as attention_lib
from flax_inpaint.nn import fills
from flax_inpaint.nn import ops

# The size for tests only (seconds on a CPU).
TEST_SIZE = 'tiny'
# Encoder widths per size; the bottleneck has twice the last width.
WIDTHS = {
    TEST_SIZE: (4, 8),
    # The CPU release: a quarter of small's FLOPs per pixel.
    'slim': (16, 32, 64, 128),
    'small': (32, 64, 128, 256),
    'medium': (64, 128, 256, 512),
    'large': (32, 64, 128, 256, 512),
}
DILATIONS = (2, 4, 8, 16)
BOTTLENECKS = ('plain', 'dilated')
NORMS = ('none', 'batch')
UPSAMPLES = ('resize', 'transpose')


class ConvNormRelu(nn.Module):
  """3x3 conv, optional batch norm, ReLU.

  `input_channels`: zero-pad the input's channels (and the kernel's) to this many: the same
  outputs and params (0 or the input's own count: no padding; dilation 1 only).
  """

  features: int
  norm: str = 'none'
  dilation: int = 1
  dtype: Any = jnp.float32
  relu_impl: str = 'output'
  input_channels: int = 0

  @nn.compact
  def __call__(self, x, *, train: bool):
    use_bias = self.norm == 'none'
    if self.input_channels and self.input_channels != x.shape[-1] and self.dilation == 1:
      x = ops.PaddedInputConv(
          self.features, self.input_channels, use_bias, self.dtype, name='Conv_0'
      )(x)
    else:
      x = nn.Conv(
          self.features, (3, 3), kernel_dilation=self.dilation, use_bias=use_bias, dtype=self.dtype
      )(x)
    if self.norm == 'batch':
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
    return ops.relu(x, self.relu_impl)


class UNet(nn.Module):
  """U-Net with two 3x3 convs per level and a plain or dilated bottleneck.

  Attributes:
    widths: encoder widths, one per level (each level halves the resolution).
    bottleneck: 'plain' (two 3x3 convs) or 'dilated' (4 convs, dilation 2..16).
    norm: 'none' or 'batch'.
    upsample: 'resize' (nearest + 3x3 conv) or 'transpose' (2x2 stride-2 conv).
    dtype: compute dtype; params stay float32.
    pool_impl, upsample_impl, relu_impl: how max pooling, 'resize' upsampling and ReLU are
      computed (`ops.POOL_IMPLS`, `ops.UPSAMPLE_IMPLS`, `ops.RELU_IMPLS`): the same
      functions and params every way.
    input_channels: the first conv's input (RGB + mask: 4 channels) zero-padded to this
      many channels, its kernel with it: the same function and params (GPUs run 8-channel
      convs on faster kernels than 4-channel ones).
  """

  widths: Sequence[int] = WIDTHS['small']
  bottleneck: str = 'dilated'
  norm: str = 'none'
  upsample: str = 'resize'
  dtype: Any = jnp.float32
  pool_impl: str = 'reshape'
  upsample_impl: str = 'subpixel'
  relu_impl: str = 'output'
  input_channels: int = 4
  coarse_fill: str = 'none'
  attention: str = 'none'

  def _attention_level(self) -> int:
    """The decoder level whose output is at 1/attention.SCALE of the input (-1: the
    bottleneck's)."""
    halvings = attention_lib.SCALE.bit_length() - 1
    if halvings > len(self.widths):
      raise ValueError(
          f'attention at 1/{attention_lib.SCALE} needs at least {halvings} levels, '
          f'the U-Net has {len(self.widths)}'
      )
    return len(self.widths) - 1 - halvings

  def _block(self, x, features, *, train, input_channels=0):
    for i in range(2):
      x = ConvNormRelu(
          features,
          self.norm,
          dtype=self.dtype,
          relu_impl=self.relu_impl,
          input_channels=input_channels if i == 0 else 0,
      )(x, train=train)
    return x

  @nn.compact
  def __call__(self, masked_image, hole_mask, *, train: bool = False, fill=None):
    """`fill`: the coarse fill computed beforehand (`fills.pushpull_uint8`, for an export
    whose window shapes are symbolic); None: computed here."""
    start = masked_image
    if self.coarse_fill != 'none':
      start = fills.pushpull(masked_image, hole_mask) if fill is None else fill
    x = jnp.concatenate([start, hole_mask], axis=-1).astype(self.dtype)
    skips = []
    for level, width in enumerate(self.widths):
      x = self._block(
          x, width, train=train, input_channels=self.input_channels if level == 0 else 0
      )
      skips.append(x)
      x = ops.max_pool_2x2(x, self.pool_impl)
    bottleneck_width = 2 * self.widths[-1]
    if self.bottleneck == 'dilated':
      for rate in DILATIONS:
        x = ConvNormRelu(bottleneck_width, self.norm, rate, self.dtype, self.relu_impl)(
            x, train=train
        )
    else:
      x = self._block(x, bottleneck_width, train=train)
    attention_level = self._attention_level() if self.attention != 'none' else None
    attention_features = x
    # Names as nn.Conv's automatic ones, so every upsample_impl shares one params tree.
    for level, (width, skip) in enumerate(zip(reversed(self.widths), reversed(skips))):
      if self.upsample == 'resize':
        x = ops.UpsampleConv(width, self.upsample_impl, self.dtype, name=f'Conv_{level}')(x)
      else:
        x = nn.ConvTranspose(width, (2, 2), strides=(2, 2), dtype=self.dtype)(x)
      x = self._block(jnp.concatenate([x, skip], axis=-1), width, train=train)
      if level == attention_level:
        attention_features = x
    copied = gate = None
    if attention_level is not None:
      # The gate starts at zero: the model starts as the one without attention.
      scale = self.param('attention_scale', nn.initializers.constant(10.0), ())
      copied = attention_lib.copy_from_known(attention_features, start, hole_mask, scale)
      gate = nn.Conv(
          1, (1, 1), kernel_init=nn.initializers.zeros, name='attention_gate', dtype=self.dtype
      )(x).astype(jnp.float32)
    convs_so_far = len(self.widths) if self.upsample == 'resize' else 0
    name = f'Conv_{convs_so_far}'
    if self.coarse_fill == 'none':
      x = nn.Conv(3, (1, 1), dtype=self.dtype, name=name)(x)
      prediction = nn.sigmoid(x.astype(jnp.float32))
      if copied is None:
        return prediction
      return jnp.clip(prediction + gate * (copied - prediction), 0.0, 1.0)
    correction = nn.Conv(3, (1, 1), dtype=self.dtype, kernel_init=nn.initializers.zeros, name=name)(
        x
    )
    # Only the holes are corrected: outside them the fill is the image itself, and an
    # ungated correction is pulled back to zero by every valid pixel's loss (the first CPU
    # release run learned nothing so: 2,496 steps, output equal to the fill to 4 decimals).
    correction = correction.astype(jnp.float32)
    if copied is not None:
      correction = correction + gate * (copied - start)
    return jnp.clip(start + hole_mask * correction, 0.0, 1.0)


def composite(prediction, image, hole_mask):
  """The repaired image: the prediction inside the holes, the input elsewhere."""
  return hole_mask * prediction + (1.0 - hole_mask) * image


def mask_image(image, hole_mask):
  """Blacks out the holes, as the seed fed its network."""
  return image * (1.0 - hole_mask)


def create_model(model_config, impl_config) -> UNet:
  """Builds the U-Net named by a `config.model` section, computed as `config.impl` says."""
  return UNet(
      widths=WIDTHS[model_config.size],
      bottleneck=model_config.bottleneck,
      norm=model_config.norm,
      upsample=model_config.upsample,
      dtype=jnp.dtype(model_config.dtype),
      pool_impl=impl_config.pool,
      upsample_impl=impl_config.upsample,
      relu_impl=impl_config.relu,
      input_channels=impl_config.unet_input_channels,
      coarse_fill=model_config.coarse_fill,
      attention=model_config.attention,
  )


def size_multiple(model_config) -> int:
  """Image sides must divide by this (one halving per level)."""
  return 2 ** len(WIDTHS[model_config.size])
