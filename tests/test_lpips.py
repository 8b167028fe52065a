"""LPIPS (VGG) is exact against a PyTorch reference written as LPIPS defines it, from the
same random arrays; it is 0 for identical images, symmetric, and batches without changing
a value."""

import numpy as np
import pytest

from flax_inpaint.evaluation import lpips
from flax_inpaint.nn import vgg16
from flax_inpaint.weights import vgg_weights

torch = pytest.importorskip('torch')

# LPIPS' ScalingLayer, applied to images in [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
# Index, in torchvision's vgg16().features, of the ReLU that ends each LPIPS slice.
LPIPS_SLICE_ENDS = (3, 8, 15, 22, 29)


@pytest.fixture(scope='module')
def weights():
  params = vgg16.init_random_params(seed=7)
  rng = np.random.default_rng(7)
  # LPIPS' trained linear layers are non-negative (it clamps them).
  linear = [rng.random(channels, np.float32) for channels in vgg_weights.LPIPS_CHANNELS]
  return params, linear


@pytest.fixture(scope='module')
def image_pair():
  rng = np.random.default_rng(0)
  images_a = rng.random((2, 32, 32, 3), np.float32)
  noise = 0.2 * rng.standard_normal(images_a.shape).astype(np.float32)
  return images_a, np.clip(images_a + noise, 0, 1)


def torch_lpips(params, linear, images_a, images_b):
  """LPIPS as richzhang/PerceptualSimilarity computes it, on torch layers from our arrays."""
  layers = []
  for name in vgg16.CONV_NAMES:
    kernel = params[name]['kernel']
    conv = torch.nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel_size=3, padding=1)
    conv.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    conv.bias.data = torch.from_numpy(params[name]['bias'].copy())
    layers += [conv, torch.nn.ReLU()]
    if name.endswith(('1_2', '2_2', '3_3', '4_3')):
      layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
  shift = torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1)
  scale = torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1)

  def taps(images):
    x = (torch.from_numpy(images.transpose(0, 3, 1, 2).copy()) * 2 - 1 - shift) / scale
    out = []
    for index, layer in enumerate(layers):
      x = layer(x)
      if index in LPIPS_SLICE_ENDS:
        out.append(x)
    return out

  with torch.no_grad():
    total = 0
    for tap_a, tap_b, weights in zip(taps(images_a), taps(images_b), linear):
      unit_a = tap_a / (torch.sqrt(torch.sum(tap_a**2, dim=1, keepdim=True)) + 1e-10)
      unit_b = tap_b / (torch.sqrt(torch.sum(tap_b**2, dim=1, keepdim=True)) + 1e-10)
      lin = torch.nn.Conv2d(len(weights), 1, kernel_size=1, bias=False)
      lin.weight.data = torch.from_numpy(weights.reshape(1, -1, 1, 1).copy())
      total = total + lin((unit_a - unit_b) ** 2).mean(dim=(2, 3), keepdim=True)
  return total.view(-1).numpy()


def test_lpips_matches_the_torch_reference(weights, image_pair):
  params, linear = weights
  got = np.asarray(lpips.lpips(params, linear, *image_pair))
  want = torch_lpips(params, linear, *image_pair)
  assert got.shape == (2,) and got.dtype == np.float32
  assert np.all(want > 0.01)  # Far from 0: the comparison is not between two zeros.
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_lpips_is_zero_for_identical_images_and_symmetric(weights, image_pair):
  params, linear = weights
  images_a, images_b = image_pair
  # Not bitwise 0: the two copies sit at different places of one conv batch.
  np.testing.assert_allclose(lpips.lpips(params, linear, images_a, images_a), 0, atol=1e-8)
  np.testing.assert_allclose(
      lpips.lpips(params, linear, images_a, images_b),
      lpips.lpips(params, linear, images_b, images_a),
      rtol=1e-6,
  )


def test_batched_lpips_pads_the_last_batch_without_changing_a_value(weights, image_pair):
  params, linear = weights
  images_a, images_b = image_pair
  three_a = np.concatenate([images_a, images_a[:1]])
  three_b = np.concatenate([images_b, images_a[:1]])
  got = lpips.lpips_batched(params, linear, three_a, three_b, batch_size=2)
  whole = np.asarray(lpips.lpips(params, linear, images_a, images_b))
  assert got.shape == (3,) and got.dtype == np.float32
  np.testing.assert_allclose(got[:2], whole, rtol=1e-6)
  np.testing.assert_allclose(got[2], 0, atol=1e-8)


def test_bad_inputs_are_clear_errors(weights, image_pair):
  params, linear = weights
  images_a, images_b = image_pair
  with pytest.raises(ValueError, match=r'two \[N, H, W, 3\] batches of one shape'):
    lpips.lpips_batched(params, linear, images_a, images_b[:1])
  with pytest.raises(ValueError, match='float images in'):
    lpips.lpips_batched(params, linear, (images_a * 255).astype(np.uint8), images_b)
  with pytest.raises(ValueError, match='LPIPS linear layers of shapes'):
    lpips.lpips(params, linear[:4], images_a, images_b)
