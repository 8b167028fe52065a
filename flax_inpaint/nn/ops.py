"""2x2 max pooling, ReLU, nearest 2x upsampling + 3x3 conv and first convs, in forms fast on
GPUs.

XLA lowers `nn.max_pool`'s gradient to select-and-scatter and the gather of
`jax.image.resize(..., 'nearest')` to a scatter-add: both scatter with atomics on GPUs.
The forms here compute the same functions with reshapes, element-wise selects, reductions
and standard convolutions only:

- `max_pool_2x2(x, 'reshape')`: the max over a [.., 2, .., 2, ..] view; its gradient goes,
  as select-and-scatter's does, to the first maximum of each window in row-major order, so
  both implementations give identical values and gradients.
- `relu(x, 'output')`: the derivative read from the output, so no pre-activation is kept and
  XLA may fuse the ReLU into the conv before it (cuDNN conv + bias + ReLU).
- `upsample_nearest_2x(x, 'repeat')`: a broadcast; its gradient is a sum over 2x2 blocks.
- `upsample_conv_2x(x, kernel, bias, 'subpixel')`: nearest 2x upsampling followed by a 3x3
  'SAME' conv equals, for each of the 4 output phases (a, b), a 2x2 conv on the small grid
  whose taps are sums of the 3x3 kernel's (the taps that read one small-grid pixel twice
  add up). The four phase kernels, zero-padded to 3x3, make one standard 3x3 conv with 4x
  the output channels on the small grid, followed by a depth-to-space reshape: the 4x
  larger upsampled tensor is never written, and the conv's 4x more output channels suit
  tensor cores better. Same parameters as the 3x3 conv it replaces.
- `PaddedInputConv`: a 3x3 conv on few input channels (the U-Net's RGB + mask, VGG16's RGB)
  with the input and kernel zero-padded to more (8): the same outputs and parameters; on
  GPUs, 3- and 4-channel convs run on generic kernels (about 20 TFLOP/s on an H200).

The `impl` names 'reduce_window', 'input' and 'gather' keep the plain forms, for comparison;
BENCHMARKS.md gives the speed of each form measured on one GPU.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

POOL_IMPLS = ('reshape', 'reduce_window')
RELU_IMPLS = ('output', 'input')
UPSAMPLE_IMPLS = ('subpixel', 'repeat', 'gather')


@jax.custom_jvp
def _relu_from_output(x):
  return jnp.maximum(x, jnp.zeros((), x.dtype))


@_relu_from_output.defjvp
def _relu_from_output_jvp(primals, tangents):
  y = _relu_from_output(primals[0])
  return y, jax.lax.select(y > 0, tangents[0], jax.lax.full_like(tangents[0], 0))


def relu(x, impl: str = 'output'):
  """max(x, 0); 'output' takes the derivative from the output (y > 0), 'input' (as
  jax.nn.relu) from the input (x > 0): the same values and gradients.

  With 'output' the backward pass needs only the ReLU's output, so XLA can fuse conv + bias +
  ReLU into one cuDNN call; with 'input' the pre-activation must be kept too, and the ReLU
  runs as a separate kernel.
  """
  if impl == 'output':
    return _relu_from_output(x)
  if impl == 'input':
    return jax.nn.relu(x)
  raise ValueError(f'relu impl {impl!r} is unknown; use one of {list(RELU_IMPLS)}')


def _windows(x):
  batch, height, width, channels = x.shape
  if height % 2 or width % 2:
    raise ValueError(f'max_pool_2x2 needs even height and width, got {x.shape}')
  return x.reshape(batch, height // 2, 2, width // 2, 2, channels)


@jax.custom_vjp
def _max_pool_reshape(x):
  return jnp.max(_windows(x), axis=(2, 4))


def _max_pool_reshape_fwd(x):
  pooled = _max_pool_reshape(x)
  return pooled, (x, pooled)  # The pooled output is kept anyway: the next layer reads it.


def _max_pool_reshape_bwd(residuals, grad):
  x, pooled = residuals
  windows = _windows(x)
  is_max = windows == pooled[:, :, None, :, None, :]
  # The first maximum in row-major window order takes the gradient (as XLA's
  # select-and-scatter with `ge` does); later ties get none.
  flat = [is_max[:, :, i, :, j] for i in (0, 1) for j in (0, 1)]
  taken = jnp.zeros_like(flat[0])
  picks = []
  for k, candidate in enumerate(flat):
    pick = ~taken if k == 3 else candidate & ~taken
    picks.append(pick)
    taken = taken | candidate
  zero = jnp.zeros((), grad.dtype)
  parts = [jnp.where(pick, grad, zero) for pick in picks]
  rows = [jnp.stack(parts[2 * i : 2 * i + 2], axis=3) for i in (0, 1)]  # [B, h, w, 2, C]
  return (jnp.stack(rows, axis=2).reshape(x.shape),)  # [B, h, 2, w, 2, C] -> NHWC


_max_pool_reshape.defvjp(_max_pool_reshape_fwd, _max_pool_reshape_bwd)


def max_pool_2x2(x, impl: str = 'reshape'):
  """2x2 max pooling with stride 2 of an NHWC batch."""
  if impl == 'reshape':
    return _max_pool_reshape(x)
  if impl == 'reduce_window':
    return nn.max_pool(x, (2, 2), strides=(2, 2))
  raise ValueError(f'pool impl {impl!r} is unknown; use one of {list(POOL_IMPLS)}')


def upsample_nearest_2x(x, impl: str = 'repeat'):
  """Nearest-neighbour 2x upsampling of an NHWC batch."""
  batch, height, width, channels = x.shape
  if impl == 'gather':
    return jax.image.resize(x, (batch, 2 * height, 2 * width, channels), 'nearest')
  if impl == 'repeat':
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (batch, height, 2, width, 2, channels))
    return x.reshape(batch, 2 * height, 2 * width, channels)
  raise ValueError(f'upsample impl {impl!r} is unknown; use one of {["repeat", "gather"]}')


def subpixel_kernel(kernel):
  """[3, 3, I, O] kernel -> [2, 2, I, 4 * O]: one 2x2 kernel per output phase (a, b).

  Phase a = 0 (even output rows) reads small-grid rows (i - 1, i) with taps
  (k0, k1 + k2); phase a = 1 reads rows (i, i + 1) with taps (k0 + k1, k2); columns alike.
  """

  def combine(k, axis):
    first, middle, last = (jnp.take(k, i, axis=axis) for i in range(3))
    return (
        jnp.stack([first, middle + last], axis=axis),
        jnp.stack([first + middle, last], axis=axis),
    )

  phases = [by_col for by_row in combine(kernel, 0) for by_col in combine(by_row, 1)]
  return jnp.concatenate(phases, axis=-1)  # Output channel = phase * O + o.


def upsample_conv_2x(x, kernel, bias, impl: str = 'subpixel', dtype=None):
  """conv3x3_same(upsample_nearest_2x(x), kernel) + bias, NHWC, computed as `impl` says.

  `dtype`: compute dtype (default x's). The sub-pixel phase kernels are summed in the
  kernel's own precision (float32 params), then cast once.
  """
  dtype = dtype or x.dtype
  x = x.astype(dtype)
  if impl != 'subpixel':
    y = jax.lax.conv_general_dilated(
        upsample_nearest_2x(x, impl),
        kernel.astype(dtype),
        (1, 1),
        'SAME',
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
    )
    return y + bias.astype(dtype)
  batch, height, width, _ = x.shape
  out = kernel.shape[-1]
  phases = subpixel_kernel(kernel)  # [2, 2, I, 4 * O]
  # Phase a reads small-grid rows (i - 1 + a, i + a): inside a 3x3 window centred on row
  # i, its 2x2 kernel takes rows a and a + 1 (zero row 2 - 2a); columns alike.
  padded = [
      jnp.pad(
          phases[:, :, :, p * out : (p + 1) * out],
          ((p // 2, 1 - p // 2), (p % 2, 1 - p % 2), (0, 0), (0, 0)),
      )
      for p in range(4)
  ]
  y = jax.lax.conv_general_dilated(
      x,
      jnp.concatenate(padded, axis=-1).astype(dtype),
      (1, 1),
      'SAME',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
  )
  y = (y + jnp.tile(bias, 4).astype(dtype)).reshape(batch, height, width, 2, 2, out)
  return y.transpose(0, 1, 3, 2, 4, 5).reshape(batch, 2 * height, 2 * width, out)


class UpsampleConv(nn.Module):
  """Nearest 2x upsampling then a 3x3 conv; params as `nn.Conv(features, (3, 3))`'s."""

  features: int
  impl: str = 'subpixel'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel, bias = conv3x3_params(self, x.shape[-1], self.features)
    return upsample_conv_2x(x, kernel, bias, self.impl, self.dtype)


def conv3x3_params(module: nn.Module, in_features: int, features: int, use_bias: bool = True):
  """(kernel, bias) params of `module` named, shaped and initialised as
  `nn.Conv(features, (3, 3), use_bias=use_bias)`'s (bias None without one), for modules
  that compute the conv their own way."""
  kernel = module.param(
      'kernel', nn.initializers.lecun_normal(), (3, 3, in_features, features), jnp.float32
  )
  if not use_bias:
    return kernel, None
  bias = module.param('bias', nn.initializers.zeros_init(), (features,), jnp.float32)
  return kernel, bias


class PaddedInputConv(nn.Module):
  """nn.Conv(features, (3, 3), padding=1) whose input channels are zero-padded to `channels`
  (and the kernel's input rows with them): the same outputs and params as the plain conv,
  but GPUs run convolutions on few input channels (3 or 4) on slow generic kernels."""

  features: int
  channels: int
  use_bias: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    if self.channels < x.shape[-1]:
      raise ValueError(
          f'input_channels={self.channels} is below the {x.shape[-1]} input ' 'channels'
      )
    kernel, bias = conv3x3_params(self, x.shape[-1], self.features, self.use_bias)
    extra = self.channels - x.shape[-1]
    x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, extra))).astype(self.dtype)
    kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, extra), (0, 0))).astype(self.dtype)
    y = jax.lax.conv_general_dilated(
        x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=('NHWC', 'HWIO', 'NHWC')
    )
    return y if bias is None else y + bias.astype(self.dtype)
