"""Image-quality metrics in numpy: PSNR, SSIM, mean absolute error, inside holes or
over the whole image. Images are float in [0, 1], [H, W, 3]; masks [H, W, 1], 1 = hole.
"""

import math

import numpy as np
from scipy import ndimage

from flax_inpaint.data import masks


def _masked_mean(error, mask):
  if mask is None:
    return float(error.mean())
  weights = np.broadcast_to(np.asarray(mask, np.float64), error.shape)
  return float((error * weights).sum() / max(weights.sum(), 1.0))


def mse(a, b, mask=None) -> float:
  """Mean squared error over the image, or over the pixels where mask is 1."""
  return _masked_mean(np.square(np.asarray(a, np.float64) - np.asarray(b, np.float64)), mask)


def mae(a, b, mask=None) -> float:
  """Mean absolute error over the image, or over the pixels where mask is 1."""
  return _masked_mean(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), mask)


def psnr(a, b, mask=None, data_range=1.0) -> float:
  """10 log10(range^2 / MSE) over the image or the masked pixels; inf if equal."""
  error = mse(a, b, mask)
  return float('inf') if error == 0 else float(10.0 * np.log10(data_range**2 / error))


def ssim(a, b, data_range=1.0) -> float:
  """Mean SSIM (Wang et al. 2004), 7x7 uniform window, per channel then averaged.

  The same definition as scikit-image's `structural_similarity` defaults
  (sample-covariance, K1=0.01, K2=0.03, borders cropped).
  """
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.ndim == 2:
    a, b = a[..., None], b[..., None]
  win = 7
  num_pixels = win * win
  cov_norm = num_pixels / (num_pixels - 1)
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  values = []
  for channel in range(a.shape[-1]):
    x, y = a[..., channel], b[..., channel]
    mean = lambda z: ndimage.uniform_filter(z, size=win, mode='reflect')
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    values.append(s[pad:-pad, pad:-pad].mean())
  return float(np.mean(values))


def image_metrics(repaired, original, hole_mask) -> dict:
  """Every metric of one repaired image against its original."""
  return {
      'hole_psnr': psnr(repaired, original, hole_mask),
      'image_psnr': psnr(repaired, original),
      'ssim': ssim(repaired, original),
      'hole_mae': mae(repaired, original, hole_mask),
      'image_mae': mae(repaired, original),
  }


AREA_BINS = ('0-10%', '10-20%', '20-30%', '30-40%', '40-50%')


# A float32 mean of a 0/1 mask is off by <= ~3e-8 (one rounding of an exact sum): a
# fraction that close above a bin's upper edge is taken as on the edge.
_BIN_TOLERANCE = 1e-7


def hole_area_bin(fraction: float) -> str:
  """The AREA_BINS bin of a hole covering `fraction` of the whole image.

  Bins are (lo, hi]: lower edge excluded, upper included ('0-10%' is (0, 0.1], and 0
  counts there too), as LaMa bins them. A float32 mean within 1e-7 above an edge counts
  as on the edge.

  Raises:
    ValueError: fraction < 0 or > 0.5 (eval masks never exceed 50%).
  """
  fraction = float(fraction)
  if not 0.0 <= fraction <= masks.MAX_EVAL_HOLE_FRACTION + _BIN_TOLERANCE:
    raise ValueError(
        f'hole fraction {fraction} is outside [0, {masks.MAX_EVAL_HOLE_FRACTION}] '
        '(the hole-area bins cover 0-50% of the image)'
    )
  bin_width = masks.MAX_EVAL_HOLE_FRACTION / len(AREA_BINS)
  index = math.ceil((fraction - _BIN_TOLERANCE) / bin_width) - 1
  return AREA_BINS[min(max(index, 0), len(AREA_BINS) - 1)]
