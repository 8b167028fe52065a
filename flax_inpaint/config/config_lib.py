"""Configs: check, resolve once, save with the run, compare with a run's saved config.

A config is checked before anything is built or compiled (`validate`, errors name the
field), resolved once at the top of every mode (`resolve`: defaults that depend on other
fields, the perceptual term without weights) into a frozen value that is passed down, and
written to WORKDIR/config.json by every training run. Evaluation, inpainting, serving and
export read that file when no config is given, and refuse a config whose model differs.
"""

import importlib.util
import json
import math
import pathlib
from typing import Any, Mapping, Optional

from absl import logging
import jax
import ml_collections

from flax_inpaint import errors
from flax_inpaint.config import schema
from flax_inpaint.evaluation import baselines
from flax_inpaint.inference import crops
from flax_inpaint.nn import fills
from flax_inpaint.nn import models
from flax_inpaint.nn import ops
from flax_inpaint.nn import vgg16
from flax_inpaint.train import masks
from flax_inpaint.weights import vgg_weights

pass  # REMOVED vgg
SOURCES = ('samples', 'folder', 'album_covers')
DTYPES = ('float32', 'bfloat16')
CONFIG_FILE = 'config.json'
# The fields that shape the params: a checkpoint restores only into the same values.
MODEL_FIELDS = ('size', 'bottleneck', 'norm', 'upsample', 'coarse_fill')


def load_sibling(config_file: str, name: str) -> ml_collections.ConfigDict:
  """`get_config()` of configs/<name>.py beside `config_file` (config files chain by path,
  so the library never imports a top-level `configs` package)."""
  path = pathlib.Path(config_file).resolve().parent / f'{name}.py'
  spec = importlib.util.spec_from_file_location(f'flax_inpaint_config_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


# ----------------------------------------------------------------------------------
# Checking.


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
        ' (flax_inpaint/config/schema.py lists every field)'
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
  for method in config.eval.baseline_methods:
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


# ----------------------------------------------------------------------------------
# Resolving: once, at the top.


def uses_vgg(config) -> bool:
  return bool(config.loss.perceptual_weight or config.loss.style_weight)


def resolve(config, *, mode='train') -> ml_collections.FrozenConfigDict:
  """The config a run really uses, frozen: validated, `loss.vgg_dtype` filled in, and the
  VGG16 terms off (with one warning) when weights are missing and `loss.require_vgg` is
  False. Raises errors.ConfigError or errors.WeightsError (one line each)."""
  validate(config, mode=mode)
  config = ml_collections.ConfigDict(config.to_dict())  # An unlocked copy.
  if config.loss.vgg_dtype is None:
    config.loss.vgg_dtype = config.model.dtype
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


# ----------------------------------------------------------------------------------
# The run's saved config.


def to_json(config) -> str:
  return json.dumps(ml_collections.ConfigDict(config).to_dict(), indent=2, sort_keys=True) + '\n'


def write_config_json(config, workdir) -> pathlib.Path:
  """WORKDIR/config.json: what the run really used (call with the resolved config)."""
  path = pathlib.Path(workdir).expanduser() / CONFIG_FILE
  if jax.process_index() == 0:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(CONFIG_FILE + '.tmp')
    tmp.write_text(to_json(config))
    tmp.replace(path)
  return path


def _merge(target, values: Mapping[str, Any], prefix, source):
  for key, value in values.items():
    if key not in target:
      raise errors.ConfigError(
          f'{source}: unknown field config.{prefix}{key} (written by another '
          'version of flax_inpaint?)'
      )
    if isinstance(value, Mapping):
      _merge(target[key], value, f'{prefix}{key}.', source)
    else:
      target[key] = tuple(value) if isinstance(value, list) else value


def read_config_json(workdir) -> Optional[ml_collections.ConfigDict]:
  """The config saved by a training run in `workdir`, or None when it has none."""
  path = pathlib.Path(workdir).expanduser() / CONFIG_FILE
  if not path.is_file():
    return None
  try:
    values = json.loads(path.read_text())
  except ValueError as e:
    raise errors.ConfigError(f'{path}: not a readable config ({e}); pass --config=FILE') from e
  config = schema.get_config()
  _merge(config, values, '', path)
  return config


def check_matches_run(config, workdir, saved=None) -> None:
  """Raises errors.ConfigError when `config`'s model differs from the one that trained `workdir`
  (`saved`: its config.json, when the caller has read it already)."""
  saved = read_config_json(workdir) if saved is None else saved
  if saved is None:
    return
  for field in MODEL_FIELDS:
    if config.model[field] != saved.model[field]:
      raise errors.ConfigError(
          f'config.model.{field}={config.model[field]!r} differs from '
          f'{saved.model[field]!r} in {pathlib.Path(workdir) / CONFIG_FILE}, the run that '
          'trained these checkpoints: omit --config to use it, or use another --workdir'
      )


def config_for_workdir(config, workdir, *, mode) -> ml_collections.FrozenConfigDict:
  """The resolved config of a mode that reads a trained workdir: `config` (checked against
  the run's saved config), or the saved config when `config` is None."""
  saved = read_config_json(workdir)
  if config is None:
    if not pathlib.Path(workdir).expanduser().is_dir():
      raise errors.ConfigError(
          f'--workdir={workdir}: no such folder: train first (python main.py '
          '--config=FILE --workdir=DIR)'
      )
    if saved is None:
      raise errors.ConfigError(
          f'{pathlib.Path(workdir) / CONFIG_FILE}: not found (a run of an '
          'older version?): pass --config=FILE'
      )
    config = saved
  else:
    check_matches_run(config, workdir, saved)
  return resolve(config, mode=mode)


def _is_number(value, cast):
  if isinstance(value, bool):
    return False
  return isinstance(value, int) if cast is int else isinstance(value, (int, float))


def _check_range(mask_config, field):
  """A (lo, hi) inclusive range within the field's limits."""
  lower, upper, cast, example = masks._RANGE_LIMITS[field]
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
  for field in masks._RANGE_LIMITS:
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
