"""VGG16 perceptual features, a Flax port of torchvision's `vgg16().features`.

Takes NHWC images in [0, 1] and applies the input normalisation stored with the
weights (ImageNet mean/std for torchvision weights, caffe-style for Keras weights).

Weights: `python -m flax_inpaint.vgg convert SRC DST` converts torchvision's
`vgg16-397923af.pth` or Keras' `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`
into our compact .npz; `python -m flax_inpaint.vgg fetch` downloads and converts the
torchvision file into the cache.
"""

import argparse
import hashlib
import os
import pathlib
import sys
import urllib.request
import zipfile
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from flax_inpaint import ops

# (block, convs per block, width): torchvision's `features` layout.
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
CONV_NAMES = tuple(f'conv{b}_{i}' for b, n, _ in BLOCKS for i in range(1, n + 1))
TAPS = tuple(f'relu{b}_{n}' for b, n, _ in BLOCKS) + tuple(f'pool{b}' for b, _, _ in BLOCKS)
# Indices of the convs in torchvision's nn.Sequential (ReLU and MaxPool in between).
TORCH_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# Keras/caffe preprocessing: BGR, 0..255, minus these means (given here in RGB order).
CAFFE_MEAN_RGB = np.array([123.68, 116.779, 103.939], np.float32)

TORCH_URL = 'https://download.pytorch.org/models/vgg16-397923af.pth'
# torchvision names its files by the first 8 hex digits of their SHA-256.
TORCH_SHA256_PREFIX = '397923af'
KERAS_URL = ('https://storage.googleapis.com/tensorflow/keras-applications/vgg16/'
             'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5')
WEIGHTS_FILE = 'vgg16_features.npz'
FORMAT_VERSION = 1


class WeightsError(ValueError):
  """A VGG16 weights file is missing, corrupt or of the wrong layout."""


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
    offset = self.param('input_offset',
                        lambda _: jnp.asarray(-IMAGENET_MEAN / IMAGENET_STD))
    x = (images * scale + offset).astype(self.dtype)
    features = {}
    for block, num_convs, width in BLOCKS:
      if 2 * block > deepest:
        break
      for i in range(1, num_convs + 1):
        conv = (ops.PaddedInputConv(width, self.input_channels, dtype=self.dtype,
                                    name='conv1_1')
                if (block, i) == (1, 1) and self.input_channels != 3 else
                nn.Conv(width, (3, 3), padding=1, dtype=self.dtype, name=f'conv{block}_{i}'))
        x = ops.relu(conv(x), self.relu_impl)
      features[f'relu{block}_{num_convs}'] = x
      if 2 * block + 1 > deepest:
        break
      x = ops.max_pool_2x2(x, self.pool_impl)
      features[f'pool{block}'] = x
    return {tap: features[tap] for tap in self.taps}


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
  return _params_from_convs(convs, 1.0 / IMAGENET_STD, -IMAGENET_MEAN / IMAGENET_STD)


def vgg16_features(params, images, taps=('relu1_2', 'relu2_2', 'relu3_3'),
                   dtype=jnp.float32, **options):
  """Features of `images` (NHWC, [0, 1]) at the named taps, as a dict.

  `options`: more VGG16Features attributes (pool_impl, relu_impl, input_channels).
  """
  return VGG16Features(taps=tuple(taps), dtype=dtype, **options).apply(
      {'params': params}, images)


# ----------------------------------------------------------------------------------
# Weight files.


def _params_from_convs(convs, input_scale, input_offset):
  """convs: list of 13 (HWIO kernel, bias) pairs in layer order."""
  params = {'input_scale': np.asarray(input_scale, np.float32),
            'input_offset': np.asarray(input_offset, np.float32)}
  expected_in = 3
  for name, (kernel, bias), (_, _, width) in zip(
      CONV_NAMES, convs, [b for b in BLOCKS for _ in range(b[1])]):
    want = (3, 3, expected_in, width)
    if kernel.shape != want or bias.shape != (width,):
      raise WeightsError(f'{name}: kernel {kernel.shape} / bias {bias.shape}, '
                         f'expected {want} / ({width},): not VGG16 weights')
    params[name] = {'kernel': np.asarray(kernel, np.float32),
                    'bias': np.asarray(bias, np.float32)}
    expected_in = width
  return params


def params_from_torch_state_dict(state_dict):
  """torchvision `vgg16().state_dict()` (or its `features`) -> our params."""
  convs = []
  for index in TORCH_CONV_INDICES:
    key = f'features.{index}.weight'
    if key not in state_dict and f'{index}.weight' in state_dict:
      key = f'{index}.weight'
    if key not in state_dict:
      raise WeightsError(f'missing {key!r}: not a torchvision VGG16 state dict')
    weight = np.asarray(state_dict[key], np.float32)  # [out, in, kh, kw]
    bias = np.asarray(state_dict[key.replace('weight', 'bias')], np.float32)
    convs.append((weight.transpose(2, 3, 1, 0), bias))
  return _params_from_convs(convs, 1.0 / IMAGENET_STD, -IMAGENET_MEAN / IMAGENET_STD)


def _h5_layer_arrays(group):
  """(kernel, bias) of one Keras layer group, in either Keras h5 weight naming."""
  import h5py  # pylint: disable=g-import-not-at-top
  names = [n.decode() if isinstance(n, bytes) else n
           for n in group.attrs.get('weight_names', [])]
  if names:
    arrays = [np.asarray(group[n]) for n in names]
  else:
    arrays = []
    group.visititems(lambda _, obj: arrays.append(np.asarray(obj))
                     if isinstance(obj, h5py.Dataset) else None)
  kernels = [a for a in arrays if a.ndim == 4]
  biases = [a for a in arrays if a.ndim == 1]
  if len(kernels) != 1 or len(biases) != 1:
    raise WeightsError(f'layer {group.name}: expected one kernel and one bias')
  return kernels[0], biases[0]


def params_from_keras_h5(path):
  """Keras `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5` -> our params.

  Keras VGG16 expects caffe preprocessing (BGR, 0..255, mean subtracted). We fold the
  channel flip into conv1_1 (a permutation: exact) and keep the scale and offset as
  the input normalisation, so the port takes RGB in [0, 1] like every other model.
  """
  import h5py  # pylint: disable=g-import-not-at-top
  with h5py.File(path, 'r') as h5:
    root = h5['model_weights'] if 'model_weights' in h5 else h5
    convs = []
    for name in CONV_NAMES:
      keras_name = f'block{name[4]}_conv{name[6]}'
      if keras_name not in root:
        raise WeightsError(f'{path}: no layer {keras_name!r}: not Keras VGG16 weights')
      convs.append(_h5_layer_arrays(root[keras_name]))
  kernel, bias = convs[0]
  convs[0] = (kernel[:, :, ::-1, :], bias)  # BGR input channels -> RGB.
  return _params_from_convs(convs, np.full(3, 255.0, np.float32), -CAFFE_MEAN_RGB)


def save_params(params, path):
  """Writes our compact weights file (.npz, features only)."""
  flat = {'format_version': np.int32(FORMAT_VERSION),
          'input_scale': params['input_scale'], 'input_offset': params['input_offset']}
  for name in CONV_NAMES:
    flat[f'{name}/kernel'] = params[name]['kernel']
    flat[f'{name}/bias'] = params[name]['bias']
  path = pathlib.Path(path).expanduser()
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + '.tmp.npz')
  np.savez(tmp, **flat)
  os.replace(tmp, path)


def load_vgg16(path):
  """Loads our .npz weights file; clear `WeightsError` if missing or corrupt."""
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise WeightsError(missing_weights_message(path))
  try:
    with np.load(path, allow_pickle=False) as npz:
      flat = {k: npz[k] for k in npz.files}
  except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
    raise WeightsError(f'{path}: corrupt or truncated VGG16 weights file ({e}). '
                       f'Delete it and convert again: {CONVERT_HINT}') from e
  missing = [k for k in ['input_scale', 'input_offset'] +
             [f'{n}/{p}' for n in CONV_NAMES for p in ('kernel', 'bias')] if k not in flat]
  if missing:
    raise WeightsError(f'{path}: not a flax_inpaint VGG16 weights file '
                       f'(missing {missing[:3]}...). {CONVERT_HINT}')
  convs = [(flat[f'{n}/kernel'], flat[f'{n}/bias']) for n in CONV_NAMES]
  try:
    return _params_from_convs(convs, flat['input_scale'], flat['input_offset'])
  except WeightsError as e:
    raise WeightsError(f'{path}: {e}') from e


def cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get('FLAX_INPAINT_CACHE',
                                     '~/.cache/flax_inpaint')).expanduser()


def default_weights_path() -> pathlib.Path:
  return cache_dir() / WEIGHTS_FILE


CONVERT_HINT = ('python -m flax_inpaint.vgg convert vgg16-397923af.pth '
                f'{default_weights_path()}')


def missing_weights_message(path) -> str:
  return (f'No VGG16 weights at {path}. With internet: `python -m flax_inpaint.vgg '
          f'fetch`. Offline: download {TORCH_URL} (torchvision) or {KERAS_URL} '
          f'(Keras) elsewhere, copy it here and run `python -m flax_inpaint.vgg convert '
          f'FILE {path}` (the .pth needs `pip install flax-inpaint[torch]`); or set '
          f'--config.loss.vgg_weights=PATH, or --config.loss.perceptual_weight=0.')


def convert(src, dst):
  """Converts a torchvision .pth or Keras .h5 VGG16 file to our .npz."""
  src = pathlib.Path(src).expanduser()
  if not src.is_file():
    raise WeightsError(f'{src}: no such file')
  if src.suffix in ('.h5', '.hdf5'):
    try:
      params = params_from_keras_h5(src)
    except OSError as e:
      raise WeightsError(f'{src}: not a readable HDF5 file ({e})') from e
  else:
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise WeightsError('Reading a .pth file needs torch: '
                         'pip install "flax-inpaint[torch]"') from e
    try:
      state_dict = torch.load(src, map_location='cpu', weights_only=True)
    except Exception as e:  # torch raises many types for a bad file.
      raise WeightsError(f'{src}: corrupt or truncated PyTorch file ({e})') from e
    params = params_from_torch_state_dict({k: v.numpy() for k, v in state_dict.items()})
  save_params(params, dst)
  return params


def sha256_of(path) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def fetch(dst=None):
  """Downloads torchvision's VGG16, checks its hash, converts it into the cache."""
  dst = pathlib.Path(dst or default_weights_path()).expanduser()
  download = dst.with_name('vgg16-397923af.pth')
  dst.parent.mkdir(parents=True, exist_ok=True)
  print(f'Downloading {TORCH_URL} -> {download}')
  try:
    urllib.request.urlretrieve(TORCH_URL, download)
  except OSError as e:  # URLError is an OSError: offline, DNS, HTTP errors.
    raise WeightsError(f'Download failed ({e}). ' + missing_weights_message(dst)) from e
  digest = sha256_of(download)
  if not digest.startswith(TORCH_SHA256_PREFIX):
    raise WeightsError(f'{download}: SHA-256 {digest} does not start with '
                       f'{TORCH_SHA256_PREFIX}: a corrupt download; delete it and retry')
  convert(download, dst)
  print(f'Wrote {dst}')


def resolve_weights_path(vgg_weights):
  """`loss.vgg_weights` -> a path (None means the cache)."""
  return pathlib.Path(vgg_weights).expanduser() if vgg_weights else default_weights_path()


def main(argv=None):
  parser = argparse.ArgumentParser(prog='python -m flax_inpaint.vgg', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', required=True)
  conv = sub.add_parser('convert', help='convert a .pth or .h5 file to our .npz')
  conv.add_argument('src')
  conv.add_argument('dst', nargs='?', default=str(default_weights_path()))
  fetch_parser = sub.add_parser('fetch', help='download torchvision weights, convert')
  fetch_parser.add_argument('dst', nargs='?', default=None)
  args = parser.parse_args(argv)
  try:
    if args.command == 'convert':
      convert(args.src, args.dst)
      print(f'Wrote {args.dst}')
    else:
      fetch(args.dst)
  except WeightsError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
