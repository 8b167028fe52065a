"""Repair images from Python: `Inpainter`.

  from flax_inpaint import Inpainter
  inpainter = Inpainter.from_pretrained()   # or .from_workdir(DIR), .from_export(FILE)
  repaired = inpainter.inpaint(image, hole_mask)

`image`: a uint8 numpy array (H x W x 3 RGB, H x W greyscale, H x W x 4 RGBA) or a PIL
image; `hole_mask`: bool H x W (True = hole), or a PIL image (non-zero = hole). The result
has the input's type and layout; every pixel outside the holes is the input's, bit for bit.

By default (`inpaint.strategy='crop'`) the model runs only on a window around each group
of holes, at a few fixed window sizes (one compiled program each), so a 12-megapixel
photo with a few holes costs about as much as a 256x256 one.

This module imports only numpy, PIL and jax at load time: `from_export` runs an exported
model without flax or TensorFlow. A training run or a release is loaded by
`train/setup.py`'s `load_trained` (flax, orbax), imported when one is asked for.
"""

import dataclasses
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from flax_inpaint.data import crops
from flax_inpaint.data import user_files
from flax_inpaint.evaluation import baselines
from flax_inpaint.inference import export_format

# predict(images uint8 [B, S, S, 3], holes bool [B, S, S]) -> float32 [B, S, S, 3] in [0, 1].
PredictFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

# What can repair an image: the model, or a classical fill to compare it with.
MODEL_METHOD = 'model'
CLASSICAL_METHODS = tuple(baselines.CLASSICAL_METHODS)
METHODS = (MODEL_METHOD,) + CLASSICAL_METHODS


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
  """How images are cut for the model (from `config.inpaint` and `config.data`)."""

  train_size: int
  multiple: int
  # No defaults here: they are config.inpaint's (config/schema.py), read by `from_config`
  # and written into exports.
  strategy: str
  crop_margin: int
  bucket_scales: Sequence[float]

  @property
  def buckets(self):
    """Window sides in pixels; the smallest is also the smallest window."""
    return tuple(int(round(self.train_size * s)) for s in self.bucket_scales)

  @property
  def run_sides(self):
    """The sides windows run at: the buckets filled in to at most 1.22x apart
    (`crops.run_sides`), height and width chosen separately."""
    return crops.run_sides(self.buckets, self.multiple)

  @classmethod
  def from_config(cls, config, multiple: int) -> 'InferenceOptions':
    return cls(
        train_size=config.data.image_size,
        multiple=multiple,
        strategy=config.inpaint.strategy,
        crop_margin=config.inpaint.crop_margin,
        bucket_scales=tuple(config.inpaint.bucket_scales),
    )


class Inpainter:
  """A trained inpainting model ready to repair images of any size."""

  def __init__(self, predict: PredictFn, options: InferenceOptions, *, step=None, description=None):
    self._model_predict = predict
    self.options = options
    self.step = step
    # How logs name the model: 'album-covers, 9,200 steps', 'the checkpoint of step 600 in W'.
    self.description = description or f'the checkpoint of step {step}'
    # Every input shape the model has run on: one compiled program each.
    self.program_shapes = set()

  def _predict(self, images, holes):
    self.program_shapes.add(images.shape)
    return self._model_predict(images, holes)

  @property
  def train_size(self) -> int:
    return self.options.train_size

  @classmethod
  def from_workdir(cls, workdir, config=None) -> 'Inpainter':
    """The latest checkpoint of a training run (or a release folder); `config` None: its
    config.json.

    Raises:
      ValueError (errors.ConfigError, checkpointing.CheckpointError): one line.
    """
    return cls.from_trained(_setup().load_trained(workdir, config))

  @classmethod
  def from_pretrained(cls, name=None) -> 'Inpainter':
    """A released model shipped in the package: `name` of `pretrained.names()` (default
    `pretrained.DEFAULT_RELEASE`, 'album-covers') or a release folder.

    Raises:
      ValueError (errors.ConfigError): no such release (one line).
    """
    setup = _setup()
    return cls.from_trained(setup.load_trained(setup.trained_source(name)))

  @classmethod
  def from_trained(cls, trained) -> 'Inpainter':
    """A model `setup.load_trained` loaded."""
    return cls.from_variables(
        trained.components, trained.variables, step=trained.step, description=trained.description
    )

  @classmethod
  def from_variables(cls, components, variables, *, step=None, description=None) -> 'Inpainter':
    """A model in memory: `setup.build(config, training=False)` and its variables."""
    predict_fn, multiple = _setup().predict_fn_and_multiple(components)
    options = InferenceOptions.from_config(components.config, multiple)
    return cls(
        lambda images, holes: np.asarray(predict_fn(variables, images, holes)),
        options,
        step=step,
        description=description,
    )

  @classmethod
  def from_export(cls, path) -> 'Inpainter':
    """A model written by `flax-inpaint export` (needs only jax and numpy)."""
    predict, options, step, description = export_format.load(path)
    return cls(predict, InferenceOptions(**options), step=step, description=description)

  def inpaint_array(
      self, pixels: np.ndarray, hole: np.ndarray, *, opaque_holes: bool = False
  ) -> np.ndarray:
    """Repairs uint8 pixels (H x W, H x W x 2, H x W x 3 or H x W x 4) under a bool H x W
    mask. opaque_holes: alpha 255 in the holes (for holes that came from the alpha)."""
    pixels = np.asarray(pixels)
    hole = np.asarray(hole, bool)
    if (
        pixels.dtype != np.uint8
        or pixels.ndim not in (2, 3)
        or (pixels.ndim == 3 and pixels.shape[-1] not in (2, 3, 4))
    ):
      raise ValueError(
          f'image: expected uint8 H x W, H x W x 3 or H x W x 4, got '
          f'{pixels.dtype} {pixels.shape}'
      )
    if hole.shape != pixels.shape[:2]:
      raise ValueError(
          f'mask is {hole.shape[1]}x{hole.shape[0]} but the image is '
          f'{pixels.shape[1]}x{pixels.shape[0]}: they must match'
      )
    if not hole.any():
      return pixels.copy()
    o = self.options
    # One window at a time: every call has the same batch, so a bucket compiles once.
    repaired_rgb = crops.inpaint_crops(
        np.ascontiguousarray(user_files.rgb_of(pixels)),
        hole,
        self._predict,
        min_window=o.buckets[0],
        margin=o.crop_margin,
        buckets=o.buckets,
        multiple=o.multiple,
        strategy=o.strategy,
        batch_size=1,
    )
    return user_files.restore_pixels(pixels, repaired_rgb, hole, opaque_holes=opaque_holes)

  def repair_array(
      self, pixels: np.ndarray, hole: np.ndarray, method: str = MODEL_METHOD, **kwargs
  ) -> np.ndarray:
    """`inpaint_array` with the model, or with a classical method of CLASSICAL_METHODS (the
    same layouts, and the same pixels outside the holes)."""
    if method == MODEL_METHOD:
      return self.inpaint_array(pixels, hole, **kwargs)
    return classical_inpaint_array(pixels, hole, method)

  def inpaint(self, image, mask, *, mask_threshold: int = user_files.HOLE_THRESHOLD):
    """Repairs `image` under `mask`; returns the same type (numpy or PIL) and layout.

    A PIL mask's holes are its pixels with any colour channel >= `mask_threshold`."""
    if isinstance(mask, Image.Image):
      mask = user_files.hole_of(
          np.asarray(mask if mask.mode in user_files.LAYOUTS else mask.convert('RGB')),
          mask_threshold,
      )
    if not isinstance(image, Image.Image):
      return self.inpaint_array(image, mask)
    mode = image.mode
    working = (
        image
        if mode in user_files.LAYOUTS
        else image.convert('RGBA' if 'A' in mode or 'transparency' in image.info else 'RGB')
    )
    repaired = Image.fromarray(self.inpaint_array(np.asarray(working), mask))
    return repaired if repaired.mode == mode else repaired.convert(mode)


def _setup():
  """The module that loads training runs and releases (flax, orbax: not for exports)."""
  from flax_inpaint.train import setup

  return setup


def classical_inpaint_array(pixels: np.ndarray, hole: np.ndarray, method: str) -> np.ndarray:
  """Repairs uint8 pixels (any layout `Inpainter.inpaint_array` takes) under a bool H x W
  mask with a classical method of CLASSICAL_METHODS: 'pushpull' (the fill the released
  model corrects), OpenCV 'telea' or 'ns' (Navier-Stokes), or 'patchmatch'."""
  if method not in CLASSICAL_METHODS:
    raise ValueError(f'method={method!r} is unknown: use one of {list(METHODS)}')
  pixels, hole = np.asarray(pixels), np.asarray(hole, bool)
  rgb = user_files.rgb_of(pixels)
  if method == 'pushpull':
    filled = baselines.pushpull(rgb.astype(np.float32) / 255.0, hole[..., None])
    repaired_rgb = np.clip(np.round(filled * 255.0), 0, 255).astype(np.uint8)
  else:
    repaired_rgb = baselines.inpaint_uint8(np.ascontiguousarray(rgb), hole, method)
  return user_files.restore_pixels(pixels, repaired_rgb, hole)
