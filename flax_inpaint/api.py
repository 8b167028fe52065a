"""Repair images from Python: `Inpainter`.

  from flax_inpaint import Inpainter
  inpainter = Inpainter.from_workdir('/tmp/flax_inpaint_demo')   # or .from_export(FILE)
  repaired = inpainter.inpaint(image, hole_mask)

`image`: a uint8 numpy array (H x W x 3 RGB, H x W greyscale, H x W x 4 RGBA) or a PIL
image; `hole_mask`: bool H x W (True = hole), or a PIL image (non-zero = hole). The result
has the input's type and layout; every pixel outside the holes is the input's, bit for bit.

By default (`inpaint.strategy='crop'`) the model runs only on a window around each group
of holes, at a few fixed window sizes (one compiled program each), so a 12-megapixel
photo with a few holes costs about as much as a 256x256 one.

This module imports only numpy and jax at load time: `from_export` runs an exported
model without flax or TensorFlow.
"""

import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np

# predict(images uint8 [B, S, S, 3], holes bool [B, S, S]) -> float32 [B, S, S, 3] in [0, 1].
PredictFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
  """How images are cut for the model (from `config.inpaint` and `config.data`)."""
  train_size: int
  multiple: int
  strategy: str = 'crop'
  crop_margin: int = 64
  bucket_scales: Sequence[int] = (1, 2, 4)

  @property
  def buckets(self):
    return tuple(self.train_size * s for s in self.bucket_scales)

  @classmethod
  def from_config(cls, config, multiple: int) -> 'InferenceOptions':
    return cls(train_size=config.data.image_size, multiple=multiple,
               strategy=config.inpaint.strategy, crop_margin=config.inpaint.crop_margin,
               bucket_scales=tuple(config.inpaint.bucket_scales))


def _as_rgb(pixels: np.ndarray) -> np.ndarray:
  if pixels.ndim == 2:
    return np.repeat(pixels[..., None], 3, axis=-1)
  return pixels[..., :3]


def _luma(rgb: np.ndarray) -> np.ndarray:
  """ITU-R 601 luma, rounded as PIL's convert('L') does."""
  weights = np.array([299, 587, 114], np.int64)
  return ((rgb.astype(np.int64) * weights).sum(-1) + 500) // 1000


def repair_pixels(pixels: np.ndarray, hole: np.ndarray, repaired_rgb: np.ndarray) -> np.ndarray:
  """The repair in `pixels`' own layout (L, RGB or RGBA): only hole pixels change, and
  alpha stays as it was."""
  out = pixels.copy()
  if pixels.ndim == 2:
    out[hole] = _luma(repaired_rgb[hole]).astype(pixels.dtype)
  else:
    out[..., :3][hole] = repaired_rgb[hole]
  return out


class Inpainter:
  """A trained inpainting model ready to repair images of any size."""

  def __init__(self, predict: PredictFn, options: InferenceOptions, *, step=None):
    self._predict = predict
    self.options = options
    self.step = step

  @property
  def train_size(self) -> int:
    return self.options.train_size

  @classmethod
  def from_workdir(cls, workdir, config=None) -> 'Inpainter':
    """The latest checkpoint of a training run; `config` None: the run's config.json.

    Raises:
      ValueError (config_lib.ConfigError, checkpointing.CheckpointError): one line.
    """
    from flax_inpaint import components as components_lib  # pylint: disable=g-import-not-at-top
    from flax_inpaint import config_lib  # pylint: disable=g-import-not-at-top
    from flax_inpaint import models  # pylint: disable=g-import-not-at-top
    from flax_inpaint import steps  # pylint: disable=g-import-not-at-top
    config = config_lib.config_for_workdir(config, workdir, mode='inpaint')
    components = components_lib.build(config, training=False)
    variables, step = components_lib.restore_variables(components, workdir)
    predict_fn = steps.make_predict_fn(components.model)
    options = InferenceOptions.from_config(config, models.size_multiple(config.model))
    return cls(lambda images, holes: np.asarray(predict_fn(variables, images, holes)),
               options, step=step)

  @classmethod
  def from_export(cls, path) -> 'Inpainter':
    """A model written by `python -m flax_inpaint.export` (needs only jax and numpy)."""
    from flax_inpaint import exported  # pylint: disable=g-import-not-at-top
    predict, options, step = exported.load(path)
    return cls(predict, options, step=step)

  def inpaint_array(self, pixels: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Repairs uint8 pixels (H x W, H x W x 3 or H x W x 4) under a bool H x W mask."""
    from flax_inpaint import crops  # pylint: disable=g-import-not-at-top
    pixels = np.asarray(pixels)
    hole = np.asarray(hole, bool)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (
        pixels.ndim == 3 and pixels.shape[-1] not in (3, 4)):
      raise ValueError(f'image: expected uint8 H x W, H x W x 3 or H x W x 4, got '
                       f'{pixels.dtype} {pixels.shape}')
    if hole.shape != pixels.shape[:2]:
      raise ValueError(f'mask is {hole.shape[1]}x{hole.shape[0]} but the image is '
                       f'{pixels.shape[1]}x{pixels.shape[0]}: they must match')
    if not hole.any():
      return pixels.copy()
    o = self.options
    repaired_rgb = crops.inpaint_crops(
        np.ascontiguousarray(_as_rgb(pixels)), hole, self._predict, train_size=o.train_size,
        margin=o.crop_margin, buckets=o.buckets, multiple=o.multiple, strategy=o.strategy)
    return repair_pixels(pixels, hole, repaired_rgb)

  def inpaint(self, image, mask, *, mask_threshold: int = 128):
    """Repairs `image` under `mask`; returns the same type (numpy or PIL) and layout."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    if isinstance(mask, Image.Image):
      mask = np.asarray(mask.convert('L')) >= mask_threshold
    if not isinstance(image, Image.Image):
      return self.inpaint_array(image, mask)
    mode = image.mode
    working = image if mode in ('L', 'RGB', 'RGBA') else image.convert(
        'RGBA' if 'A' in mode or 'transparency' in image.info else 'RGB')
    repaired = Image.fromarray(self.inpaint_array(np.asarray(working), mask))
    return repaired if repaired.mode == mode else repaired.convert(mode)
