"""Configs checked and resolved once, at the top of every mode, before anything is built.

`validate` checks a whole config against the allowed values that its parts own and export
(the model's sizes and ops in nn/, mask kinds and window strategies in data/, the
classical methods in evaluation/, the VGG16 taps); an error is one line naming the field.
`resolve` returns the config a run really uses, frozen: validated, with the defaults that
depend on other fields or on files filled in. Every mode calls it first and passes the
frozen value down; `setup.build` takes nothing else.
"""

import math

from absl import logging
import jax
import ml_collections

from flax_inpaint import errors
from flax_inpaint.config import command_line
from flax_inpaint.config import schema
from flax_inpaint.data import crops
from flax_inpaint.data import masks
from flax_inpaint.evaluation import baselines
from flax_inpaint.nn import attention
from flax_inpaint.nn import discriminator
from flax_inpaint.nn import fills
from flax_inpaint.nn import models
from flax_inpaint.nn import ops
from flax_inpaint.nn import vgg16
from flax_inpaint.weights import vgg_weights

SOURCES = ('samples', 'folder', 'album_covers')
DTYPES = ('float32', 'bfloat16')


def _unknown_fields(config, reference, prefix=''):
  for key in config.keys():
    name = f'{prefix}{key}'
    if key not in reference:
      yield name
    elif hasattr(config[key], 'keys') and hasattr(reference[key], 'keys'):
      yield from _unknown_fields(config[key], reference[key], name + '.')


def _choice(value, options, field):
  if value not in options:
    raise errors.ConfigError(f'config.{field}={value!r} is unknown; use one of {list(options)}')


def _positive(config, section, fields):
  for field in fields:
    if config[section][field] <= 0:
      raise errors.ConfigError(
          f'config.{section}.{field}={config[section][field]} must be positive'
      )


def validate(config, *, num_devices=None, mode='train'):
  """Raises errors.ConfigError naming the first bad field."""
  unknown = list(_unknown_fields(config, schema.get_config()))
  if unknown:
    raise errors.ConfigError(
        f'Unknown config field(s): {", ".join("config." + u for u in unknown)}'
        f' ({command_line.FIELDS_HINT})'
    )
  if config.model.size not in models.WIDTHS:
    raise errors.ConfigError(
        f'config.model.size={config.model.size!r} is unknown; use one of '
        f'{[size for size in models.WIDTHS if size != models.TEST_SIZE]} '
        f'({models.TEST_SIZE!r} is for tests)'
    )
  _choice(config.model.bottleneck, models.BOTTLENECKS, 'model.bottleneck')
  _choice(config.model.norm, models.NORMS, 'model.norm')
  _choice(config.model.upsample, models.UPSAMPLES, 'model.upsample')
  _choice(config.model.coarse_fill, fills.COARSE_FILLS, 'model.coarse_fill')
  _choice(config.model.attention, attention.ATTENTIONS, 'model.attention')
  _choice(config.model.dtype, DTYPES, 'model.dtype')
  if config.loss.vgg_dtype is not None:
    _choice(config.loss.vgg_dtype, DTYPES, 'loss.vgg_dtype')
  _choice(config.impl.pool, ops.POOL_IMPLS, 'impl.pool')
  _choice(config.impl.upsample, ops.UPSAMPLE_IMPLS, 'impl.upsample')
  _choice(config.impl.relu, ops.RELU_IMPLS, 'impl.relu')
  _choice(config.data.source, SOURCES, 'data.source')
  _choice(config.data.fit, ('crop', 'resize'), 'data.fit')
  _choice(config.train.schedule, ('constant', 'cosine'), 'train.schedule')
  _choice(config.loss.perceptual_distance, ('l1', 'l2'), 'loss.perceptual_distance')
  _choice(config.inpaint.strategy, crops.STRATEGIES, 'inpaint.strategy')
  multiple = models.size_multiple(config.model)
  if config.data.image_size % multiple:
    raise errors.ConfigError(
        f'config.data.image_size={config.data.image_size} is not divisible by '
        f'2^levels={multiple} of model.size={config.model.size!r}'
    )
  crop = config.data.crop_size
  if crop is not None and (crop <= 0 or crop > config.data.image_size or crop % multiple):
    raise errors.ConfigError(
        f'config.data.crop_size={crop} must be at most data.image_size='
        f'{config.data.image_size} and divisible by {multiple}, or None'
    )
  if crop is not None and config.masks.kind == 'files':
    raise errors.ConfigError(
        "config.data.crop_size needs holes drawn on the device: masks.kind='files' "
        'masks are whole images; leave data.crop_size unset'
    )
  if not 0.0 <= config.train.ema_decay < 1.0:
    raise errors.ConfigError(
        f'config.train.ema_decay={config.train.ema_decay} must be in [0, 1) ' '(0 = off)'
    )
  if mode == 'train':
    _positive(
        config,
        'train',
        (
            'num_steps',
            'batch_size',
            'checkpoint_every',
            'log_every',
            'sample_every',
            'keep_checkpoints',
            'lr',
        ),
    )
    num_devices = num_devices or jax.device_count()
    if config.train.batch_size % num_devices:
      raise errors.ConfigError(
          f'config.train.batch_size={config.train.batch_size} (global) is not '
          f'divisible by the {num_devices} devices'
      )
  _positive(config, 'serve', ('max_pixels', 'max_upload_mb'))
  if config.inpaint.crop_margin < 0:
    raise errors.ConfigError(
        f'config.inpaint.crop_margin={config.inpaint.crop_margin} must be >= 0'
    )
  scales = tuple(config.inpaint.bucket_scales)
  sides = [config.data.image_size * s for s in scales]
  if (
      not scales
      or any(s <= 0 for s in scales)
      or list(scales) != sorted(set(scales))
      or any(side != round(side) or round(side) % multiple for side in sides)
  ):
    raise errors.ConfigError(
        f'config.inpaint.bucket_scales={scales} must be increasing and give '
        f'window sides (x data.image_size={config.data.image_size}) divisible '
        f'by {multiple}'
    )
  try:
    # Training draws holes on the crop: they must fit in it.
    validate_mask_config(config.masks, config.data.crop_size or config.data.image_size)
  except ValueError as e:
    raise errors.ConfigError(str(e)) from e
  for method in config.eval.baseline_methods or ():
    _choice(method, list(baselines.BASELINES), 'eval.baseline_methods')
  for kind in config.eval.mask_kinds:
    _choice(kind, masks.EVAL_KINDS, 'eval.mask_kinds')
  if not config.eval.mask_kinds:
    raise errors.ConfigError(
        f'config.eval.mask_kinds is empty; use some of {list(masks.EVAL_KINDS)}'
    )
  if config.data.source == 'folder' and not config.data.dir:
    raise errors.ConfigError("config.data.source='folder' needs --config.data.dir=FOLDER")
  if (
      config.data.source == 'album_covers'
      and mode in ('train', 'eval')
      and not (config.data.data_dir or (mode == 'eval' and config.eval.dir))
  ):
    raise errors.ConfigError(
        'album_covers is not prepared: config.data.data_dir is not set. Run '
        '`python main.py --mode=prepare --config=configs/full.py '
        '--config.data.manual_dir=KAGGLE_DOWNLOAD --config.data.data_dir=DIR` '
        'first and pass --config.data.data_dir=DIR, or train on a folder: '
        '--config.data.source=folder --config.data.dir=FOLDER'
    )
  if len(config.loss.perceptual_layers) != len(config.loss.perceptual_layer_weights):
    raise errors.ConfigError(
        'config.loss.perceptual_layer_weights needs one weight per entry '
        f'of config.loss.perceptual_layers={tuple(config.loss.perceptual_layers)}'
    )
  if config.impl.unet_input_channels < 4:
    raise errors.ConfigError(
        f'config.impl.unet_input_channels={config.impl.unet_input_channels} must '
        'be >= 4 (RGB + hole mask; 8 pads them for faster GPU convs)'
    )
  if config.impl.vgg_input_channels < 3:
    raise errors.ConfigError(
        f'config.impl.vgg_input_channels={config.impl.vgg_input_channels} must '
        "be >= 3 (the images' channels; 8 pads them for faster GPU convs)"
    )
  for layer in config.loss.perceptual_layers:
    _choice(layer, vgg16.TAPS, 'loss.perceptual_layers')
  _validate_discriminator(config)


def _validate_discriminator(config):
  gan = config.discriminator
  for field in ('weight', 'feature_matching_weight', 'r1_weight'):
    if not gan[field] >= 0:
      raise errors.ConfigError(f'config.discriminator.{field}={gan[field]} must be >= 0')
  if not gan.lr > 0:
    raise errors.ConfigError(f'config.discriminator.lr={gan.lr} must be positive')
  widths = tuple(gan.widths)
  if not widths or not all(
      isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths
  ):
    raise errors.ConfigError(
        f'config.discriminator.widths={widths} must be positive whole numbers, e.g. (32,64,128)'
    )
  side = config.data.crop_size or config.data.image_size
  if side % discriminator.logits_scale(widths):
    raise errors.ConfigError(
        f'config.discriminator.widths={widths}: {len(widths)} halvings do not divide the '
        f'training side {side}; use fewer widths'
    )


def uses_vgg(config) -> bool:
  return bool(config.loss.perceptual_weight or config.loss.style_weight)


def uses_discriminator(config) -> bool:
  """Whether training runs a discriminator beside the model (an adversarial term)."""
  return bool(config.discriminator.weight or config.discriminator.feature_matching_weight)


def resolve(config, *, mode='train') -> ml_collections.FrozenConfigDict:
  """The config a run really uses, frozen: validated, `loss.vgg_dtype` and
  `eval.baseline_methods` (every classical method) filled in, and the VGG16 terms off (with one warning) when weights are missing and `loss.require_vgg` is
  False. Raises errors.ConfigError or errors.WeightsError (one line each)."""
  validate(config, mode=mode)
  config = ml_collections.ConfigDict(config.to_dict())  # An unlocked copy.
  if config.loss.vgg_dtype is None:
    config.loss.vgg_dtype = config.model.dtype
  if config.eval.baseline_methods is None:
    config.eval.baseline_methods = tuple(baselines.BASELINES)
  if mode == 'train' and uses_vgg(config) and config.loss.vgg_weights != 'random':
    path = vgg_weights.resolve_weights_path(config.loss.vgg_weights)
    if not path.is_file():
      if config.loss.require_vgg:
        raise errors.WeightsError(vgg_weights.missing_weights_message(path))
      logging.warning(
          'No VGG16 weights at %s: training WITHOUT the perceptual/style terms '
          '(config.json records weight 0). `python -m flax_inpaint.vgg fetch` '
          'adds them.',
          path,
      )
      config.loss.perceptual_weight = 0.0
      config.loss.style_weight = 0.0
  return ml_collections.FrozenConfigDict(config)


def _is_number(value, cast):
  if isinstance(value, bool):
    return False
  return isinstance(value, int) if cast is int else isinstance(value, (int, float))


def _check_range(mask_config, field):
  """A (lo, hi) inclusive range within the field's limits."""
  lower, upper, cast, example = masks.RANGE_LIMITS[field]
  value = mask_config[field]
  shown = tuple(value) if isinstance(value, (list, tuple)) else value
  ok = (
      isinstance(shown, tuple)
      and len(shown) == 2
      and all(_is_number(v, cast) for v in shown)
      and shown[0] <= shown[1]
  )
  # A box side of 0 px is no box: box_side's lower limit is exclusive.
  ok = ok and (shown[0] > lower if field == 'box_side' else shown[0] >= lower)
  ok = ok and shown[1] <= upper
  if not ok:
    kind = 'whole numbers' if cast is int else 'numbers'
    bound = '<' if field == 'box_side' else '<='
    raise ValueError(
        f'config.masks.{field}={shown!r} is not an inclusive range (lo, hi) of '
        f'{kind} with {lower} {bound} lo <= hi <= {upper}: pass e.g. '
        f'--config.masks.{field}={example}'
    )


def validate_mask_config(mask_config, image_size):
  """Raises ValueError naming the first bad `config.masks` field and what to do."""
  kind = mask_config['kind']
  if kind not in masks.KINDS:
    raise ValueError(f'config.masks.kind={kind!r} is unknown: use one of {list(masks.KINDS)}')
  num_patches = mask_config['num_patches']
  if not _is_number(num_patches, int) or num_patches < 1:
    raise ValueError(
        f'config.masks.num_patches={num_patches!r} must be a whole number >= 1: '
        'pass e.g. --config.masks.num_patches=4'
    )
  patch_size = mask_config['patch_size']
  if not _is_number(patch_size, int) or not 1 <= patch_size <= image_size:
    raise ValueError(
        f'config.masks.patch_size={patch_size!r} must be a whole number from 1 '
        f'to data.image_size={image_size}: pass e.g. --config.masks.patch_size='
        f'{max(1, image_size // 8)}'
    )
  for field in masks.RANGE_LIMITS:
    _check_range(mask_config, field)
  mix = mask_config['mix']
  shown = tuple(mix) if isinstance(mix, (list, tuple)) else mix
  if (
      not isinstance(shown, tuple)
      or len(shown) != len(masks.EVAL_KINDS)
      or not all(_is_number(w, float) and math.isfinite(w) and w >= 0 for w in shown)
      or sum(shown) <= 0
  ):
    raise ValueError(
        f'config.masks.mix={shown!r} must be {len(masks.EVAL_KINDS)} weights >= 0 of '
        f'{", ".join(masks.EVAL_KINDS)}, not all 0: pass e.g. '
        '--config.masks.mix=(1.0,1.0,1.0)'
    )
  if kind == 'files' and not mask_config.get('dir'):
    raise ValueError(
        "config.masks.kind='files' needs a folder of mask images: pass " '--config.masks.dir=FOLDER'
    )
