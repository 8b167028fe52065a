"""Hole masks, 1 = hole: squares, boxes, free-form brush strokes, and a mix of them.

`sample_masks` is pure jnp, drawn on the device inside the jitted train step from a key
(no host work). `eval_mask` gives each eval image's mask as a pure function of (seed,
image index, kind), so two runs or two machines evaluate the same holes. Kind 'files'
(mask images from a folder) is not drawn here: the input pipeline loads those.

Coordinates: pixel (row, col) sits at the integer point (row, col).
"""

import functools
import math
from typing import NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np

KINDS = ('squares', 'boxes', 'strokes', 'mixed', 'files')
DRAWN_KINDS = ('squares', 'boxes', 'strokes', 'mixed')
# The kinds `mixed` draws among, in the order of `masks.mix`; also the eval kinds.
EVAL_KINDS = ('squares', 'boxes', 'strokes')

# Eval masks may cover at most this fraction of the image (the largest AREA_BINS bin).
MAX_EVAL_HOLE_FRACTION = 0.5
# Redraws allowed before an eval mask of a config that rarely fits is an error.
MAX_EVAL_DRAWS = 100

# DeepFill v2's brush (Yu et al. 2019, free-form masks): turns alternate left and right
# by 2pi/5 +- up to 2pi/15, so a stroke zig-zags; segment lengths ~ N(r, r/2) clipped to
# [0, 2r] with r = image diagonal / 8; widths are given at 256x256.
_MEAN_TURN = 2 * math.pi / 5
_TURN_SPREAD = 2 * math.pi / 15
_WIDTH_REFERENCE_SIDE = 256
# Thinner strokes could break into pieces between pixel centres (a stroke stays one
# 8-connected piece from a width of 1 px).
_MIN_WIDTH_PX = 1.0

# Limits of the (lo, hi) range fields, their type, and an example for error messages. The
# upper limits bound the static loop sizes of the device draw.
RANGE_LIMITS = {
    'boxes_per_image': (1, 32, int, '(1,3)'),
    'box_side': (0.0, 1.0, float, '(0.1,0.6)'),
    'strokes_per_image': (1, 16, int, '(1,4)'),
    'stroke_vertices': (2, 64, int, '(4,12)'),
    'stroke_width': (1.0, 256.0, float, '(5,40)'),
}


class MaskParams(NamedTuple):
  """The mask fields of a config as plain hashable values (static under jit)."""

  kind: str
  num_patches: int
  patch_size: int
  boxes_per_image: Tuple[int, int]
  box_side: Tuple[float, float]
  strokes_per_image: Tuple[int, int]
  stroke_vertices: Tuple[int, int]
  stroke_width: Tuple[float, float]
  mix: Tuple[float, float, float]
  # The side of the whole image the holes are sized for (0 = the canvas they are drawn
  # on). A crop of a training image draws its holes at the whole image's pixel sizes.
  full_side: int = 0


def mask_params(mask_config, full_side: int = 0) -> MaskParams:
  """Reads a mapping (dict, ConfigDict or FrozenConfigDict) with the `masks` fields."""
  pair = lambda name, cast: tuple(cast(v) for v in mask_config[name])
  return MaskParams(
      kind=str(mask_config['kind']),
      num_patches=int(mask_config['num_patches']),
      patch_size=int(mask_config['patch_size']),
      boxes_per_image=pair('boxes_per_image', int),
      box_side=pair('box_side', float),
      strokes_per_image=pair('strokes_per_image', int),
      stroke_vertices=pair('stroke_vertices', int),
      stroke_width=pair('stroke_width', float),
      mix=pair('mix', float),
      full_side=int(full_side),
  )


# ---------------------------------------------------------------------------- squares


def _squares_from_corners(corners, height, width, patch_size, xp):
  """[..., P, 2] (y, x) corners -> [..., H, W] mask of the union of the squares."""
  rows = xp.arange(height)
  cols = xp.arange(width)
  in_rows = (rows >= corners[..., 0:1]) & (rows < corners[..., 0:1] + patch_size)
  in_cols = (cols >= corners[..., 1:2]) & (cols < corners[..., 1:2] + patch_size)
  covered = xp.einsum('...ph,...pw->...hw', in_rows.astype(xp.float32), in_cols.astype(xp.float32))
  return (covered > 0).astype(xp.float32)


def sample_hole_masks(key, batch_size, height, width, *, num_patches=4, patch_size=32):
  """Draws `num_patches` squares per image at uniform positions (overlaps allowed).

  Returns:
    float32 [batch_size, height, width, 1], 1 inside the holes.
  """
  key_y, key_x = jax.random.split(key)
  shape = (batch_size, num_patches, 1)
  corner_y = jax.random.randint(key_y, shape, 0, height - patch_size + 1)
  corner_x = jax.random.randint(key_x, shape, 0, width - patch_size + 1)
  corners = jnp.concatenate([corner_y, corner_x], axis=-1)
  return _squares_from_corners(corners, height, width, patch_size, jnp)[..., None]


def eval_hole_mask(seed, index, height, width, *, num_patches=4, patch_size=32):
  """The eval mask of image `index`: numpy default_rng([seed, index]) corners.

  The same definition as the album-covers-dev baselines: `integers(0, H - size + 1,
  (num_patches, 2))` as (y, x) corners. Returns float32 [height, width, 1].
  """
  rng = np.random.default_rng([seed, index])
  # A scalar bound for square images keeps the stream identical to the baselines'.
  high = height - patch_size + 1 if height == width else np.array([height, width]) - patch_size + 1
  corners = rng.integers(0, high, (num_patches, 2))
  return _squares_from_corners(corners, height, width, patch_size, np)[..., None]


def step_mask_key(base_key, step, *, fixed: bool):
  """The key the masks of `step` are drawn from: fixed mode reuses one key."""
  return base_key if fixed else jax.random.fold_in(base_key, step)


# ------------------------------------------------------------------------------ boxes


def box_side_range(side_fraction: Tuple[float, float], image_side: int) -> Tuple[int, int]:
  """Inclusive range of box sides in pixels: the whole pixels within the fractions.

  If the range holds no whole pixel (tiny images), the side is the one just above it.
  """
  lo = min(max(math.ceil(side_fraction[0] * image_side - 1e-6), 1), image_side)
  hi = min(max(math.floor(side_fraction[1] * image_side + 1e-6), lo), image_side)
  return lo, hi


def _box_sides(params: MaskParams, canvas_side: int) -> Tuple[int, int]:
  """Box sides in pixels on a canvas: the whole image's (`params.full_side`), at most the
  largest fraction `box_side[1]` of the canvas (a crop keeps context around its box)."""
  if not params.full_side:
    return box_side_range(params.box_side, canvas_side)
  lo, hi = box_side_range(params.box_side, params.full_side)
  largest = box_side_range(params.box_side, canvas_side)[1]
  return min(lo, largest), min(hi, largest)


def _boxes(key, batch, height, width, params: MaskParams):
  """[B, H, W] bool: boxes_per_image axis-aligned rectangles, sides uniform in whole pixels."""
  lo_count, hi_count = params.boxes_per_image
  key_count, key_h, key_w, key_top, key_left = jax.random.split(key, 5)
  shape = (batch, hi_count)
  count = jax.random.randint(key_count, (batch, 1), lo_count, hi_count + 1)
  active = jnp.arange(hi_count) < count
  lo_h, hi_h = _box_sides(params, height)
  lo_w, hi_w = _box_sides(params, width)
  box_h = jax.random.randint(key_h, shape, lo_h, hi_h + 1)
  box_w = jax.random.randint(key_w, shape, lo_w, hi_w + 1)
  top = jax.random.randint(key_top, shape, 0, height - box_h + 1)
  left = jax.random.randint(key_left, shape, 0, width - box_w + 1)
  rows, cols = jnp.arange(height), jnp.arange(width)
  in_rows = (rows >= top[..., None]) & (rows < (top + box_h)[..., None]) & active[..., None]
  in_cols = (cols >= left[..., None]) & (cols < (left + box_w)[..., None])
  covered = jnp.einsum('bnh,bnw->bhw', in_rows.astype(jnp.float32), in_cols.astype(jnp.float32))
  return covered > 0


# ---------------------------------------------------------------------------- strokes


def stroke_walks(key, batch, height, width, params: MaskParams):
  """DeepFill v2's random walks: vertices, brush radius and which segments are drawn.

  Returns:
    vertices: float32 [B, S, V, 2] (row, col), whole pixels inside the image.
    radius: float32 [B, S], half the brush width in pixels.
    segment_drawn: bool [B, S, V - 1]; segment j joins vertices j and j + 1.
  """
  lo_strokes, hi_strokes = params.strokes_per_image
  lo_vertices, hi_vertices = params.stroke_vertices
  num_segments = hi_vertices - 1
  keys = jax.random.split(key, 8)
  stroke_shape, segment_shape = (batch, hi_strokes), (batch, hi_strokes, num_segments)
  num_strokes = jax.random.randint(keys[0], (batch, 1), lo_strokes, hi_strokes + 1)
  num_vertices = jax.random.randint(keys[1], stroke_shape, lo_vertices, hi_vertices + 1)
  segment_drawn = (jnp.arange(num_segments) < (num_vertices - 1)[..., None]) & (
      jnp.arange(hi_strokes) < num_strokes
  )[..., None]
  # Each stroke's turn angles lie in [mean - a, mean + b], a and b drawn per stroke.
  spread = jax.random.uniform(keys[2], stroke_shape + (2,), maxval=_TURN_SPREAD)
  turn = jax.random.uniform(
      keys[3],
      segment_shape,
      minval=_MEAN_TURN - spread[..., :1],
      maxval=_MEAN_TURN + spread[..., 1:],
  )
  alternate = jnp.where(jnp.arange(num_segments) % 2 == 0, -1.0, 1.0)
  # DeepFill flips the whole mask at random; a uniform heading per stroke generalises it.
  heading = jax.random.uniform(keys[4], stroke_shape + (1,), maxval=2 * math.pi)
  angle = heading + alternate * turn
  full_height, full_width = (
      (params.full_side, params.full_side) if params.full_side else (height, width)
  )
  mean_length = math.hypot(full_height, full_width) / 8
  length = jnp.clip(
      mean_length + mean_length / 2 * jax.random.normal(keys[5], segment_shape),
      0.0,
      2 * mean_length,
  )
  steps = jnp.stack([length * jnp.sin(angle), length * jnp.cos(angle)], axis=-1)
  start = jnp.floor(
      jax.random.uniform(keys[6], stroke_shape + (2,)) * jnp.array([height, width], jnp.float32)
  )
  vertices = _walk(start, steps, height, width)
  scale = min(full_height, full_width) / _WIDTH_REFERENCE_SIDE
  stroke_width = (
      jax.random.uniform(
          keys[7], stroke_shape, minval=params.stroke_width[0], maxval=params.stroke_width[1]
      )
      * scale
  )
  radius = jnp.maximum(stroke_width, _MIN_WIDTH_PX) / 2
  return vertices, radius, segment_drawn


def _walk(start, steps, height, width):
  """Adds the steps one by one, each vertex snapped to the nearest pixel inside the image
  (as DeepFill does: the walk goes on from the clipped vertex)."""
  limit = jnp.array([height - 1, width - 1], jnp.float32)

  def advance(position, step):
    position = jnp.clip(jnp.round(position + step), 0.0, limit)
    return position, position

  _, later = jax.lax.scan(advance, start, jnp.moveaxis(steps, -2, 0))
  return jnp.concatenate([start[..., None, :], jnp.moveaxis(later, 0, -2)], axis=-2)


def rasterise_segments(starts, ends, radius, drawn, height, width):
  """[B, H, W] bool: pixels within `radius` of any drawn segment (round brush and caps).

  Args:
    starts, ends: float32 [B, K, 2] (row, col) segment end points.
    radius: float32 [B, K]; drawn: bool [B, K].
  One segment at a time with a running union, so memory stays B x H x W.
  """
  rows = jnp.arange(height, dtype=jnp.float32)[None, :, None]
  cols = jnp.arange(width, dtype=jnp.float32)[None, None, :]
  # An undrawn segment gets a negative squared radius: no distance is below it.
  radius_sq = jnp.where(drawn, radius * radius, -1.0)

  def draw(covered, segment):
    start, end, reach_sq = segment
    (start_row, start_col), (step_row, step_col) = _rows_cols(start), _rows_cols(end - start)
    to_row, to_col = rows - start_row, cols - start_col
    along = jnp.clip(
        (to_row * step_row + to_col * step_col)
        / jnp.maximum(step_row * step_row + step_col * step_col, 1e-12),
        0.0,
        1.0,
    )
    off_row, off_col = to_row - along * step_row, to_col - along * step_col
    inside = off_row * off_row + off_col * off_col <= reach_sq[:, None, None]
    return covered | inside, None

  segments = (jnp.moveaxis(starts, 1, 0), jnp.moveaxis(ends, 1, 0), jnp.moveaxis(radius_sq, 1, 0))
  covered, _ = jax.lax.scan(draw, jnp.zeros((starts.shape[0], height, width), bool), segments)
  return covered


def _rows_cols(points):
  """[B, 2] -> two [B, 1, 1] arrays that broadcast against the pixel grid."""
  return points[:, 0, None, None], points[:, 1, None, None]


def _strokes(key, batch, height, width, params: MaskParams):
  """[B, H, W] bool: free-form brush strokes."""
  vertices, radius, segment_drawn = stroke_walks(key, batch, height, width, params)
  flat = lambda x: x.reshape((batch, -1) + x.shape[3:])
  segment_radius = jnp.broadcast_to(radius[..., None], segment_drawn.shape)
  return rasterise_segments(
      flat(vertices[:, :, :-1]),
      flat(vertices[:, :, 1:]),
      flat(segment_radius),
      flat(segment_drawn),
      height,
      width,
  )


# ------------------------------------------------------------------------------ draws


def _draw_kind(kind, key, batch, height, width, params: MaskParams):
  """[B, H, W] float32 masks of one of EVAL_KINDS."""
  if kind == 'squares':
    return sample_hole_masks(
        key, batch, height, width, num_patches=params.num_patches, patch_size=params.patch_size
    )[..., 0]
  draw = {'boxes': _boxes, 'strokes': _strokes}[kind]
  return draw(key, batch, height, width, params).astype(jnp.float32)


def _mixed(key, batch, height, width, params: MaskParams):
  """Each image's kind drawn with weights `mix`; kinds of weight 0 are not computed."""
  key_kind, *kind_keys = jax.random.split(key, 1 + len(EVAL_KINDS))
  logits = jnp.log(jnp.asarray(params.mix, jnp.float32))
  kind_index = jax.random.categorical(key_kind, logits, shape=(batch,))[:, None, None]
  hole_mask = jnp.zeros((batch, height, width), jnp.float32)
  for kind_id, (kind, kind_key) in enumerate(zip(EVAL_KINDS, kind_keys)):
    if params.mix[kind_id] > 0:
      drawn = _draw_kind(kind, kind_key, batch, height, width, params)
      hole_mask = jnp.where(kind_index == kind_id, drawn, hole_mask)
  return hole_mask


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _sample(key, batch, height, width, params: MaskParams):
  if params.kind == 'mixed':
    return _mixed(key, batch, height, width, params)[..., None]
  return _draw_kind(params.kind, key, batch, height, width, params)[..., None]


def sample_masks(key, batch_size, height, width, mask_config, full_side: int = 0):
  """Draws a batch of hole masks of `mask_config.kind` from `key`, on the device.

  Pure jnp with static shapes: call it inside a jitted step. Kind 'squares' gives
  exactly `sample_hole_masks(key, ...)`. `full_side`: holes sized for a whole image of
  this side, drawn on a height x width crop of it (0 = sized for the canvas itself).

  Returns:
    float32 [batch_size, height, width, 1], 1 inside the holes.
  """
  params = mask_params(mask_config, full_side)
  if params.kind not in DRAWN_KINDS:
    raise ValueError(
        f'masks.kind={params.kind!r} is not drawn on the device (one of '
        f"{list(DRAWN_KINDS)}); kind 'files' masks come from the input pipeline"
    )
  return _sample(key, batch_size, height, width, params)


# ------------------------------------------------------------------------- eval masks


@functools.partial(jax.jit, static_argnums=(4, 5, 6, 7))
def _eval_draw(seed, index, kind_id, draw, height, width, kind, params: MaskParams):
  """One mask drawn from fold_in(key(seed), index, kind_id, draw): compiled once."""
  key = jax.random.key(seed)
  for data in (index, kind_id, draw):
    key = jax.random.fold_in(key, data)
  return _draw_kind(kind, key, 1, height, width, params)[0]


def _eval_candidate(seed, index, height, width, params: MaskParams, kind, draw):
  """Draw number `draw` of an eval mask: [H, W] float32."""
  kind_id = EVAL_KINDS.index(kind)
  if kind == 'squares':
    if draw == 0:  # The published baselines' masks.
      return eval_hole_mask(
          seed, index, height, width, num_patches=params.num_patches, patch_size=params.patch_size
      )[..., 0]
    rng = np.random.default_rng([seed, index, kind_id, draw])
    corners = rng.integers(
        0, [height - params.patch_size + 1, width - params.patch_size + 1], (params.num_patches, 2)
    )
    return _squares_from_corners(corners, height, width, params.patch_size, np)
  # On the CPU whatever the default device: the same bits on every machine.
  with jax.default_device(jax.local_devices(backend='cpu')[0]):
    return np.asarray(_eval_draw(seed, index, kind_id, draw, height, width, kind, params))


def eval_mask(seed, index, height, width, mask_config, kind) -> np.ndarray:
  """The eval mask of image `index` for `kind`: a pure function of (seed, index, kind)
  and the config's parameters of that kind.

  'squares' is `eval_hole_mask(seed, index, ...)` (the published baselines' masks).
  'boxes' and 'strokes' are drawn like `sample_masks` (on the CPU) from the key
  fold_in(key(seed), index, kind number, draw). Draws with a hole over 50% of the image
  (the largest AREA_BINS bin) are redrawn with draw = 1, 2, ... .

  Returns:
    float32 [height, width, 1], 1 inside the hole; hole fraction in (0, 0.5].
  """
  if kind not in EVAL_KINDS:
    raise ValueError(f'eval mask kind {kind!r} is unknown: use one of {list(EVAL_KINDS)}')
  params = mask_params(mask_config)
  for draw in range(MAX_EVAL_DRAWS):
    hole_mask = _eval_candidate(seed, index, height, width, params, kind, draw)
    hole_pixels = int(hole_mask.sum())
    if 0 < hole_pixels <= MAX_EVAL_HOLE_FRACTION * height * width:
      return hole_mask[..., None]
  raise ValueError(
      f'config.masks: no {kind!r} eval mask of image {index} at {height}x{width} '
      f'has a hole of at most {MAX_EVAL_HOLE_FRACTION:.0%} of the image in '
      f"{MAX_EVAL_DRAWS} draws: make that kind's holes smaller"
  )
