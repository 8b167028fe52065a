"""The VGG16 port is exact against a PyTorch reference (torchvision layout, random
weights), for both weight files users have: torchvision .pth and Keras .h5."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_inpaint import vgg

torch = pytest.importorskip('torch')

# Output index of each tap in torchvision's vgg16().features.
TORCH_TAP_INDEX = {'relu1_2': 3, 'pool1': 4, 'relu2_2': 8, 'pool2': 9, 'relu3_3': 15,
                   'pool3': 16, 'relu4_3': 22, 'pool4': 23, 'relu5_3': 29, 'pool5': 30}


def torch_vgg16_features(seed=0):
  """torchvision's vgg16().features layout as a plain nn.Sequential, random weights."""
  torch.manual_seed(seed)
  layers, cin = [], 3
  for v in [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M',
            512, 512, 512, 'M']:
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
  ours = vgg.vgg16_features(params, jnp.asarray(images), vgg.TAPS)
  for tap in vgg.TAPS:
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
  assert vgg.main(['convert', str(pth), str(dst)]) == 0
  params = vgg.load_vgg16(dst)
  normalised = (images - vgg.IMAGENET_MEAN) / vgg.IMAGENET_STD
  reference = torch_taps(reference_model, normalised.transpose(0, 3, 1, 2).copy())
  assert_taps_close(params, images, reference)


def write_keras_h5(path, reference_model, nested=False):
  """Keras' notop .h5 layout: one group per layer, kernels HWIO, BGR input."""
  import h5py  # pylint: disable=g-import-not-at-top
  convs = [m for m in reference_model if isinstance(m, torch.nn.Conv2d)]
  with h5py.File(path, 'w') as h5:
    names = []
    for name, conv in zip(vgg.CONV_NAMES, convs):
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
  vgg.convert(h5, dst)
  params = vgg.load_vgg16(dst)
  # Keras VGG16 sees caffe input: BGR, 0..255, minus the ImageNet means.
  caffe = images[..., ::-1] * 255.0 - vgg.CAFFE_MEAN_RGB[::-1]
  reference = torch_taps(reference_model, caffe.transpose(0, 3, 1, 2).astype(np.float32).copy())
  assert_taps_close(params, images, reference)


def test_only_up_to_the_deepest_tap():
  params = vgg.init_random_params()
  shallow = {k: v for k, v in params.items() if not k.startswith(('conv2', 'conv3', 'conv4',
                                                                   'conv5'))}
  out = vgg.vgg16_features(shallow, jnp.zeros((1, 16, 16, 3)), ('relu1_2', 'pool1'))
  assert out['relu1_2'].shape == (1, 16, 16, 64) and out['pool1'].shape == (1, 8, 8, 64)
  with pytest.raises(ValueError, match='Unknown VGG16 tap'):
    vgg.vgg16_features(params, jnp.zeros((1, 16, 16, 3)), ('relu9_9',))


def test_missing_weights_error_says_what_to_do(tmp_path):
  with pytest.raises(vgg.WeightsError) as err:
    vgg.load_vgg16(tmp_path / 'nope.npz')
  message = str(err.value)
  for needle in ('python -m flax_inpaint.vgg fetch', vgg.TORCH_URL, 'convert'):
    assert needle in message


def test_corrupt_and_truncated_files_give_clear_errors(tmp_path):
  good = tmp_path / 'good.npz'
  vgg.save_params(vgg.init_random_params(), good)
  truncated = tmp_path / 'truncated.npz'
  truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
  with pytest.raises(vgg.WeightsError, match='corrupt or truncated'):
    vgg.load_vgg16(truncated)
  junk = tmp_path / 'junk.npz'
  junk.write_bytes(b'not a zip at all')
  with pytest.raises(vgg.WeightsError, match='corrupt or truncated'):
    vgg.load_vgg16(junk)
  other = tmp_path / 'other.npz'
  np.savez(other, something=np.zeros(3))
  with pytest.raises(vgg.WeightsError, match='not a flax_inpaint VGG16'):
    vgg.load_vgg16(other)
  bad_pth = tmp_path / 'bad.pth'
  bad_pth.write_bytes(b'\x80\x02garbage')
  assert vgg.main(['convert', str(bad_pth), str(tmp_path / 'x.npz')]) == 1
  with pytest.raises(vgg.WeightsError, match='corrupt or truncated PyTorch'):
    vgg.convert(bad_pth, tmp_path / 'x.npz')
  wrong = {f'features.{i}.weight': np.zeros((8, 3, 3, 3), np.float32)
           for i in vgg.TORCH_CONV_INDICES}
  wrong.update({f'features.{i}.bias': np.zeros(8, np.float32) for i in vgg.TORCH_CONV_INDICES})
  with pytest.raises(vgg.WeightsError, match='not VGG16 weights'):
    vgg.params_from_torch_state_dict(wrong)


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.setenv('FLAX_INPAINT_CACHE', str(tmp_path))
  assert vgg.default_weights_path() == pathlib.Path(tmp_path) / vgg.WEIGHTS_FILE
  assert vgg.resolve_weights_path(None) == pathlib.Path(tmp_path) / vgg.WEIGHTS_FILE
  assert vgg.resolve_weights_path('~/w.npz') == pathlib.Path('~/w.npz').expanduser()


def test_fetch_checks_the_hash_and_converts(tmp_path, monkeypatch, reference_model):
  """The real fetch path, served from a local file:// URL (no network in tests)."""
  served = tmp_path / 'served.pth'
  torch.save({f'features.{k}': v for k, v in reference_model.state_dict().items()}, served)
  monkeypatch.setattr(vgg, 'TORCH_URL', served.as_uri())
  with pytest.raises(vgg.WeightsError, match='SHA-256'):
    vgg.fetch(tmp_path / 'cache' / vgg.WEIGHTS_FILE)  # Not torchvision's file: refused.
  monkeypatch.setattr(vgg, 'TORCH_SHA256_PREFIX', vgg.sha256_of(served)[:8])
  monkeypatch.setenv('FLAX_INPAINT_CACHE', str(tmp_path / 'cache'))
  assert vgg.main(['fetch']) == 0
  params = vgg.load_vgg16(vgg.default_weights_path())
  np.testing.assert_array_equal(
      params['conv1_1']['kernel'],
      reference_model[0].weight.detach().numpy().transpose(2, 3, 1, 0))


def test_fetch_offline_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.setattr(vgg, 'TORCH_URL', (tmp_path / 'missing.pth').as_uri())
  with pytest.raises(vgg.WeightsError, match='Download failed.*convert'):
    vgg.fetch(tmp_path / vgg.WEIGHTS_FILE)


@pytest.mark.parametrize('pool_impl,relu_impl', [('reshape', 'output'),
                                                ('reduce_window', 'input')])
def test_padded_input_channels_and_impls_give_the_same_features(pool_impl, relu_impl):
  params = vgg.init_random_params(seed=3)
  images = jnp.asarray(np.random.default_rng(5).uniform(size=(2, 16, 16, 3)), jnp.float32)
  taps = ('relu1_2', 'pool1', 'relu2_2')

  def features_and_grad(input_channels, pool, relu):
    def total(x):
      feats = vgg.vgg16_features(params, x, taps, pool_impl=pool, relu_impl=relu,
                                 input_channels=input_channels)
      return sum(jnp.sum(jnp.sin(f)) for f in feats.values()), feats
    return jax.value_and_grad(total, has_aux=True)(images)

  (_, want), want_grad = features_and_grad(3, 'reduce_window', 'input')
  (_, got), got_grad = features_and_grad(8, pool_impl, relu_impl)
  for tap in taps:
    np.testing.assert_allclose(got[tap], want[tap], rtol=1e-5, atol=1e-5, err_msg=tap)
  np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-6)
  assert float(jnp.abs(want_grad).max()) > 0
  with pytest.raises(ValueError, match='input_channels=2'):
    vgg.vgg16_features(params, images, taps, input_channels=2)
