"""Run the model on windows around the holes, at a few fixed sizes (IOPaint's Crop/Resize).

A 12-megapixel photo with a few small holes needs the model only near the holes. The holes
are grouped into regions and each region gets one window: the region's bounding box grown
by `margin` on each side, at least `min_window` per side, shifted (not shrunk) to stay in
the image. Each side of a window runs padded to the smallest *run side* that holds it, so
a folder of mixed image sizes compiles one program per (height, width) pair of run sides,
not one per image. Only the hole pixels are pasted back: every other pixel is the
input's, bit for bit.

Run sides (`run_sides`): the buckets, and between each two of them sides at most
sqrt(1.5) = 1.22x apart, so that a window pays at most 1.5x its own area
(`MAX_PADDED_AREA`; windows narrower than the smallest side, in images smaller than it,
pay more). With the default buckets at 256 and the small model's multiple 16 that is 11
sides: 192, 224, 256, 304, 368, 448, 512, 624, 752, 912, 1024. The trade: up to 11 x 11
programs instead of 4 square ones, each compiled once when first needed, against windows
padded to up to 4x their area before (a 384 px window ran at 512 x 512, 1.8x, now at
448 x 448, 1.36x; a 200 x 900 strip at 1024 x 1024, 5.8x, now at 224 x 912, 1.13x).

Strategies (`inpaint.strategy`):
  'crop'   windows larger than the largest bucket run at their own size, rounded up to
           `multiple` (a new program; rare with the default buckets).
  'resize' such windows are scaled down to the largest bucket, predicted and the
           prediction scaled back up (LaMa's and IOPaint's Resize).
  'full'   the whole image, padded up to `multiple` (the path before crops existed).

Defaults, and why (`config.inpaint`; `min_window` is the smallest bucket):
  buckets  (0.75, 1, 2, 4) x the training size: (192, 256, 512, 1024) at 256, filled in
           to the run sides above. They cover windows up to 1024 px; the 192 px side
           holds a hole of up to 64 px with its full margin, at 56% of a 256 px window's
           cost (a photo with a few scratches runs one small window per scratch).
  margin   64 px. IOPaint's Crop uses `hd_strategy_crop_margin` = 128 image pixels
           (iopaint/schema.py; its LaMa was trained on 256 px crops) and sets no minimum
           window, so there the margin is all the context a small hole gets. Here every
           window is at least `min_window`, so a small hole sees more than the margin, and
           holes up to 256 - 2 * 64 = 128 px run at the training scale with at least 64 px
           of real context on each side.

Padding: image and hole mask are padded alike (reflect, or symmetric when the padding is
as large as the side), as the whole-image path did. Padding the mask with 0 instead would
mirror the damaged pixels under a hole into the padding as if they were valid context.

numpy, scipy and PIL (to resize windows for 'resize', with antialiasing) only: no JAX
here; `predict` is the caller's.
"""

import collections
import dataclasses
import math
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.sparse import csgraph

from flax_inpaint.data import images as images_lib

STRATEGIES = ('crop', 'resize', 'full')
# The most a window pays for its run shape, as a multiple of its own area: each side is
# padded by at most the square root.
MAX_PADDED_AREA = 1.5
# Above this many hole components, dilate first (see _hole_regions).
_MAX_REGIONS_UNDILATED = 512

# predict(images uint8 [B, h, w, 3], holes bool [B, h, w]) -> float32 [B, h, w, 3] in [0, 1].
PredictFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
# (y0, x0, y1, x1): rows y0..y1-1, columns x0..x1-1.
Box = Tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class Window:
  """One model run: image rows y0..y1-1 and columns x0..x1-1, fed as a run_shape array.

  run_shape is a pair of run sides (`run_sides`; 'crop' and 'resize'), or the window's
  own size rounded up to the model's multiple ('full', and 'crop' windows over the largest
  bucket). scale < 1: the window is shrunk to `scaled_shape` before padding ('resize').
  """

  y0: int
  x0: int
  y1: int
  x1: int
  run_shape: Tuple[int, int]
  scale: float = 1.0

  @property
  def height(self) -> int:
    return self.y1 - self.y0

  @property
  def width(self) -> int:
    return self.x1 - self.x0

  @property
  def slices(self) -> Tuple[slice, slice]:
    return slice(self.y0, self.y1), slice(self.x0, self.x1)

  @property
  def scaled_shape(self) -> Tuple[int, int]:
    """The window's size as the model sees it, before padding to run_shape."""
    return _scaled(self.height, self.width, self.scale)

  @property
  def padded_area_ratio(self) -> float:
    """What the window costs (its run shape's area) over its own area."""
    return self.run_shape[0] * self.run_shape[1] / (self.height * self.width)


def _scaled(height: int, width: int, scale: float) -> Tuple[int, int]:
  if scale == 1.0:
    return height, width
  return max(1, round(height * scale)), max(1, round(width * scale))


def _round_up(size: int, multiple: int) -> int:
  return -(-size // multiple) * multiple


def run_sides(buckets: Sequence[int], multiple: int) -> Tuple[int, ...]:
  """The sides windows run at: the buckets and, between each two, multiples of `multiple`
  at most sqrt(MAX_PADDED_AREA) apart (when `multiple` allows: a step is at least one
  multiple)."""
  step = math.sqrt(MAX_PADDED_AREA)
  buckets = sorted(set(buckets))
  sides = [buckets[0]]
  for bucket in buckets[1:]:
    while bucket > sides[-1] * step:
      sides.append(max(sides[-1] + multiple, int(sides[-1] * step) // multiple * multiple))
    sides.append(bucket)
  return tuple(sides)


def _fit(size: int, sides: Sequence[int]) -> int:
  """The smallest of the increasing `sides` that holds `size` (the largest holds all)."""
  return next(side for side in sides if side >= size)


def _check_options(min_window, margin, buckets, multiple, strategy):
  if strategy not in STRATEGIES:
    raise ValueError(f'inpaint.strategy={strategy!r}: use one of {", ".join(STRATEGIES)}')
  if min_window < 1 or margin < 0 or multiple < 1:
    raise ValueError(
        f'min_window={min_window}, margin={margin}, multiple={multiple}: '
        'min_window and multiple must be >= 1, margin >= 0'
    )
  if strategy == 'full':
    return
  if not buckets or any(b < 1 or b % multiple for b in buckets):
    raise ValueError(f'buckets={tuple(buckets)}: give sides that are multiples of {multiple}')
  if max(buckets) < min_window:
    raise ValueError(f'buckets={tuple(buckets)}: the largest must be >= min_window={min_window}')


def _span(lo: int, hi: int, size: int, min_window: int, margin: int) -> Tuple[int, int]:
  """One axis of a window: [lo, hi) grown by margin, at least min_window, inside [0, size)."""
  want = max(hi - lo + 2 * margin, min_window)
  if want >= size:
    return 0, size
  start = lo - (want - (hi - lo)) // 2
  # Shift into the image rather than shrink: the model gets its full view of context.
  start = min(max(start, 0), size - want)
  return start, start + want


def _grow(box: Box, shape, min_window: int, margin: int) -> Box:
  y0, y1 = _span(box[0], box[2], shape[0], min_window, margin)
  x0, x1 = _span(box[1], box[3], shape[1], min_window, margin)
  return y0, x0, y1, x1


def _union(boxes: Sequence[Box]) -> Box:
  return (
      min(b[0] for b in boxes),
      min(b[1] for b in boxes),
      max(b[2] for b in boxes),
      max(b[3] for b in boxes),
  )


def _component_boxes(components: np.ndarray, hole: Optional[np.ndarray] = None) -> List[Box]:
  """Bounding boxes of each 8-connected component of `components`, or of the `hole`
  pixels within each (when components is a dilated hole)."""
  labels, _ = ndimage.label(components, structure=np.ones((3, 3), bool))
  if hole is not None:
    labels[~hole] = 0
  return [
      (s[0].start, s[1].start, s[0].stop, s[1].stop)
      for s in ndimage.find_objects(labels)
      if s is not None
  ]


def _hole_regions(hole: np.ndarray, margin: int, min_window: int) -> List[Box]:
  """Regions to start merging from: the hole's components; for a speckled mask with very
  many, the components of the hole dilated by margin (at least min_window / 4), which
  bounds the pairwise merge below (it may join holes whose windows would not have met:
  a larger window, never a wrong one)."""
  regions = _component_boxes(hole)
  if len(regions) <= _MAX_REGIONS_UNDILATED:
    return regions
  radius = max(margin, min_window // 4)
  # A square maximum filter is separable: fast even for 12-megapixel masks.
  dilated = ndimage.maximum_filter(hole.view(np.uint8), size=2 * radius + 1).view(bool)
  return _component_boxes(dilated, hole)


def _overlaps(windows: np.ndarray) -> np.ndarray:
  """bool [n, n]: which of the int [n, 4] (y0, x0, y1, x1) windows overlap another."""
  y0, x0, y1, x1 = (windows[:, i] for i in range(4))
  overlaps = (
      (y0[:, None] < y1[None])
      & (y0[None] < y1[:, None])
      & (x0[:, None] < x1[None])
      & (x0[None] < x1[:, None])
  )
  np.fill_diagonal(overlaps, False)
  return overlaps


def _merge_overlapping(regions: List[Box], shape, min_window: int, margin: int) -> List[Box]:
  """Merges regions whose windows overlap until every window stands alone (a merged
  region's window is larger and may reach a third region: hence the loop)."""
  while True:
    windows = np.array([_grow(r, shape, min_window, margin) for r in regions])
    overlaps = _overlaps(windows)
    if not overlaps.any():
      return regions
    _, group_of = csgraph.connected_components(overlaps, directed=False)
    groups = collections.defaultdict(list)
    for group, region in zip(group_of, regions):
      groups[group].append(region)
    regions = [_union(group) for group in groups.values()]


def _run_shape_and_scale(window: Box, sides, multiple: int, strategy: str):
  """(run_shape, scale) of a window for 'crop' or 'resize' (`sides`: `run_sides`)."""
  height, width = window[2] - window[0], window[3] - window[1]
  longest, largest = max(height, width), sides[-1]
  if longest > largest and strategy == 'crop':
    return (_round_up(height, multiple), _round_up(width, multiple)), 1.0
  scale = min(1.0, largest / longest)
  scaled_height, scaled_width = _scaled(height, width, scale)
  return (_fit(scaled_height, sides), _fit(scaled_width, sides)), scale


def plan_windows(
    hole: np.ndarray,
    *,
    min_window: int,
    margin: int,
    buckets: Sequence[int],
    multiple: int,
    strategy: str,
) -> List[Window]:
  """Disjoint windows that together cover every hole pixel of a bool [H, W] mask ([] when
  there is no hole). Deterministic: the same mask gives the same windows.

  Raises:
    ValueError: an unknown strategy, or buckets that are not multiples of `multiple`.
  """
  _check_options(min_window, margin, buckets, multiple, strategy)
  hole = np.asarray(hole, bool)
  if not hole.any():
    return []
  height, width = hole.shape
  if strategy == 'full':
    return [Window(0, 0, height, width, (_round_up(height, multiple), _round_up(width, multiple)))]
  regions = _merge_overlapping(
      _hole_regions(hole, margin, min_window), hole.shape, min_window, margin
  )
  sides = run_sides(buckets, multiple)
  windows = []
  for region in regions:
    box = _grow(region, hole.shape, min_window, margin)
    run_shape, scale = _run_shape_and_scale(box, sides, multiple, strategy)
    windows.append(Window(*box, run_shape=run_shape, scale=scale))
  return windows


def _assert_disjoint(windows: Sequence[Window]) -> None:
  boxes = np.array([(w.y0, w.x0, w.y1, w.x1) for w in windows]).reshape(-1, 4)
  assert not _overlaps(boxes).any(), f'windows overlap after merging: {windows}'


def _pad_bottom_right(array: np.ndarray, height: int, width: int) -> np.ndarray:
  """Pads rows and columns at the end up to height x width: reflect, or symmetric when a
  padding is as large as the side (reflect would need more pixels than there are)."""
  pad_y, pad_x = height - array.shape[0], width - array.shape[1]
  mode = 'reflect' if pad_y < array.shape[0] and pad_x < array.shape[1] else 'symmetric'
  pads = ((0, pad_y), (0, pad_x)) + ((0, 0),) * (array.ndim - 2)
  return np.pad(array, pads, mode=mode)


def _resize_rgb(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """uint8 [h, w, 3] -> [height, width, 3]; PIL's bicubic is antialiased when shrinking."""
  resized = Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC)
  return np.asarray(resized, np.uint8)


def _shrink_hole(hole: np.ndarray, height: int, width: int) -> np.ndarray:
  """A shrunk pixel is a hole if any hole pixel falls in it: the model never sees damage."""
  coverage = Image.fromarray(hole.astype(np.float32)).resize((width, height), Image.Resampling.BOX)
  return np.asarray(coverage) > 0


def _resize_prediction(prediction: np.ndarray, height: int, width: int) -> np.ndarray:
  channels = [
      np.asarray(
          Image.fromarray(np.ascontiguousarray(prediction[..., c], np.float32)).resize(
              (width, height), Image.Resampling.BICUBIC
          )
      )
      for c in range(prediction.shape[-1])
  ]
  return np.stack(channels, axis=-1)


def cut_window(
    image_rgb: np.ndarray, hole: np.ndarray, window: Window
) -> Tuple[np.ndarray, np.ndarray]:
  """What the model sees for `window`: (uint8 [*run_shape, 3], bool [*run_shape])."""
  image_crop, hole_crop = image_rgb[window.slices], hole[window.slices]
  if window.scale != 1.0:
    scaled_height, scaled_width = window.scaled_shape
    image_crop = _resize_rgb(image_crop, scaled_height, scaled_width)
    hole_crop = _shrink_hole(hole_crop, scaled_height, scaled_width)
  return (
      _pad_bottom_right(image_crop, *window.run_shape),
      _pad_bottom_right(hole_crop, *window.run_shape),
  )


def _paste(result: np.ndarray, hole: np.ndarray, window: Window, prediction) -> None:
  """Writes the prediction's hole pixels into `result` in place."""
  prediction = prediction[: window.scaled_shape[0], : window.scaled_shape[1]]
  if window.scale != 1.0:
    prediction = _resize_prediction(prediction, window.height, window.width)
  window_hole = hole[window.slices]
  result[window.slices][window_hole] = images_lib.to_uint8(prediction)[window_hole]


def _predict_batches(predict: PredictFn, images, holes, batch_size: Optional[int]):
  """Runs predict on stacked windows of one run shape. batch_size None: one call; else
  calls of exactly batch_size windows (the last filled up with copies of its last window),
  so that every call of a bucket has one shape: one compiled program."""
  images, holes = np.stack(images), np.stack(holes)
  count = len(images)
  if batch_size is None:
    starts, size = [0], count
  else:
    starts, size = range(0, count, batch_size), batch_size
  outputs = []
  for start in starts:
    take = np.minimum(np.arange(start, start + size), count - 1)
    expected = (size,) + images.shape[1:]
    predicted = np.asarray(predict(images[take], holes[take]), np.float32)
    if predicted.shape != expected:
      raise ValueError(f'predict returned shape {predicted.shape}, expected {expected}')
    outputs.append(predicted[: count - start])
  return np.concatenate(outputs)


def inpaint_crops(
    image_rgb: np.ndarray,
    hole: np.ndarray,
    predict: PredictFn,
    *,
    min_window: int,
    margin: int,
    buckets: Sequence[int],
    multiple: int,
    strategy: str,
    batch_size: Optional[int] = None,
) -> np.ndarray:
  """Repairs uint8 [H, W, 3] `image_rgb` under bool [H, W] `hole` with the model's `predict`.

  Windows of one run shape go to predict together (see `_predict_batches` for
  batch_size). Returns uint8 [H, W, 3]: predictions (rounded) in the holes, the input
  bit for bit everywhere else. The options are config.inpaint's (`api.InferenceOptions`):
  no defaults here.
  """
  image_rgb, hole = np.asarray(image_rgb), np.asarray(hole, bool)
  if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[-1] != 3:
    raise ValueError(
        f'image_rgb: expected uint8 [H, W, 3], got {image_rgb.dtype} ' f'{image_rgb.shape}'
    )
  if hole.shape != image_rgb.shape[:2]:
    raise ValueError(f'hole is {hole.shape} but the image is {image_rgb.shape[:2]}')
  buckets = tuple(buckets)
  windows = plan_windows(
      hole,
      min_window=min_window,
      margin=margin,
      buckets=buckets,
      multiple=multiple,
      strategy=strategy,
  )
  _assert_disjoint(windows)
  by_shape = collections.defaultdict(list)
  for window in windows:
    by_shape[window.run_shape].append(window)
  result = image_rgb.copy()
  for group in by_shape.values():
    inputs = [cut_window(image_rgb, hole, window) for window in group]
    predictions = _predict_batches(
        predict, [i for i, _ in inputs], [h for _, h in inputs], batch_size
    )
    for window, prediction in zip(group, predictions):
      _paste(result, hole, window, prediction)
  return result
