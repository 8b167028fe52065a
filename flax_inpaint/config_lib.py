"""Configs: check, resolve once, save with the run, compare with a run's saved config.

A config is checked before anything is built or compiled (`validate`, errors name the
field), resolved once at the top of every mode (`resolve`: defaults that depend on other
fields, the perceptual term without weights) into a frozen value that is passed down, and
written to WORKDIR/config.json by every training run. Evaluation, inpainting, serving and
export read that file when no config is given, and refuse a config whose model differs.
"""

import importlib.util
import json
import pathlib
from typing import Any, Mapping, Optional

from absl import logging
import jax
import ml_collections

from flax_inpaint import baselines
from flax_inpaint import defaults
from flax_inpaint import fills
from flax_inpaint import masks
from flax_inpaint import models
from flax_inpaint import ops
from flax_inpaint import vgg

SOURCES = ('samples', 'folder', 'album_covers')
DTYPES = ('float32', 'bfloat16')
STRATEGIES = ('crop', 'resize', 'full')
CONFIG_FILE = 'config.json'
# The fields that shape the params: a checkpoint restores only into the same values.
MODEL_FIELDS = ('size', 'bottleneck', 'norm', 'upsample', 'coarse_fill')


class ConfigError(ValueError):
  """A bad config value, named in one line."""


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
    raise ConfigError(f'config.{field}={value!r} is unknown; use one of {list(options)}')


def _positive(config, section, fields):
  for field in fields:
    if config[section][field] <= 0:
      raise ConfigError(f'config.{section}.{field}={config[section][field]} must be positive')


def validate(config, *, num_devices=None, mode='train'):
  """Raises ConfigError naming the first bad field."""
  unknown = list(_unknown_fields(config, defaults.get_config()))
  if unknown:
    raise ConfigError(
        f'Unknown config field(s): {", ".join("config." + u for u in unknown)}'
        ' (flax_inpaint/defaults.py lists every field)'
    )
  if config.model.size not in models.WIDTHS:
    raise ConfigError(
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
  _choice(config.inpaint.strategy, STRATEGIES, 'inpaint.strategy')
  multiple = models.size_multiple(config.model)
  if config.data.image_size % multiple:
    raise ConfigError(
        f'config.data.image_size={config.data.image_size} is not divisible by '
        f'2^levels={multiple} of model.size={config.model.size!r}'
    )
  crop = config.data.crop_size
  if crop is not None and (crop <= 0 or crop > config.data.image_size or crop % multiple):
    raise ConfigError(
        f'config.data.crop_size={crop} must be at most data.image_size='
        f'{config.data.image_size} and divisible by {multiple}, or None'
    )
  if crop is not None and config.masks.kind == 'files':
    raise ConfigError(
        "config.data.crop_size needs holes drawn on the device: masks.kind='files' "
        'masks are whole images; leave data.crop_size unset'
    )
  if not 0.0 <= config.train.ema_decay < 1.0:
    raise ConfigError(
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
      raise ConfigError(
          f'config.train.batch_size={config.train.batch_size} (global) is not '
          f'divisible by the {num_devices} devices'
      )
  _positive(config, 'serve', ('max_pixels', 'max_upload_mb'))
  if config.inpaint.crop_margin < 0:
    raise ConfigError(f'config.inpaint.crop_margin={config.inpaint.crop_margin} must be >= 0')
  scales = tuple(config.inpaint.bucket_scales)
  sides = [config.data.image_size * s for s in scales]
  if (
      not scales
      or any(s <= 0 for s in scales)
      or list(scales) != sorted(set(scales))
      or any(side != round(side) or round(side) % multiple for side in sides)
  ):
    raise ConfigError(
        f'config.inpaint.bucket_scales={scales} must be increasing and give '
        f'window sides (x data.image_size={config.data.image_size}) divisible '
        f'by {multiple}'
    )
  try:
    # Training draws holes on the crop: they must fit in it.
    masks.validate_mask_config(config.masks, config.data.crop_size or config.data.image_size)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  for method in config.eval.baseline_methods:
    _choice(method, list(baselines.BASELINES), 'eval.baseline_methods')
  for kind in config.eval.mask_kinds:
    _choice(kind, masks.EVAL_KINDS, 'eval.mask_kinds')
  if not config.eval.mask_kinds:
    raise ConfigError(f'config.eval.mask_kinds is empty; use some of {list(masks.EVAL_KINDS)}')
  if config.data.source == 'folder' and not config.data.dir:
    raise ConfigError("config.data.source='folder' needs --config.data.dir=FOLDER")
  if (
      config.data.source == 'album_covers'
      and mode in ('train', 'eval')
      and not (config.data.data_dir or (mode == 'eval' and config.eval.dir))
  ):
    raise ConfigError(
        'album_covers is not prepared: config.data.data_dir is not set. Run '
        '`python main.py --mode=prepare --config=configs/full.py '
        '--config.data.manual_dir=KAGGLE_DOWNLOAD --config.data.data_dir=DIR` '
        'first and pass --config.data.data_dir=DIR, or train on a folder: '
        '--config.data.source=folder --config.data.dir=FOLDER'
    )
  if len(config.loss.perceptual_layers) != len(config.loss.perceptual_layer_weights):
    raise ConfigError(
        'config.loss.perceptual_layer_weights needs one weight per entry '
        f'of config.loss.perceptual_layers={tuple(config.loss.perceptual_layers)}'
    )
  if config.impl.unet_input_channels < 4:
    raise ConfigError(
        f'config.impl.unet_input_channels={config.impl.unet_input_channels} must '
        'be >= 4 (RGB + hole mask; 8 pads them for faster GPU convs)'
    )
  if config.impl.vgg_input_channels < 3:
    raise ConfigError(
        f'config.impl.vgg_input_channels={config.impl.vgg_input_channels} must '
        "be >= 3 (the images' channels; 8 pads them for faster GPU convs)"
    )
  for layer in config.loss.perceptual_layers:
    _choice(layer, vgg.TAPS, 'loss.perceptual_layers')


# ----------------------------------------------------------------------------------
# Resolving: once, at the top.


def uses_vgg(config) -> bool:
  return bool(config.loss.perceptual_weight or config.loss.style_weight)


def resolve(config, *, mode='train') -> ml_collections.FrozenConfigDict:
  """The config a run really uses, frozen: validated, `loss.vgg_dtype` filled in, and the
  VGG16 terms off (with one warning) when weights are missing and `loss.require_vgg` is
  False. Raises ConfigError or vgg.WeightsError (one line each)."""
  validate(config, mode=mode)
  config = ml_collections.ConfigDict(config.to_dict())  # An unlocked copy.
  if config.loss.vgg_dtype is None:
    config.loss.vgg_dtype = config.model.dtype
  if mode == 'train' and uses_vgg(config) and config.loss.vgg_weights != 'random':
    path = vgg.resolve_weights_path(config.loss.vgg_weights)
    if not path.is_file():
      if config.loss.require_vgg:
        raise vgg.WeightsError(vgg.missing_weights_message(path))
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
      raise ConfigError(
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
    raise ConfigError(f'{path}: not a readable config ({e}); pass --config=FILE') from e
  config = defaults.get_config()
  _merge(config, values, '', path)
  return config


def check_matches_run(config, workdir, saved=None) -> None:
  """Raises ConfigError when `config`'s model differs from the one that trained `workdir`
  (`saved`: its config.json, when the caller has read it already)."""
  saved = read_config_json(workdir) if saved is None else saved
  if saved is None:
    return
  for field in MODEL_FIELDS:
    if config.model[field] != saved.model[field]:
      raise ConfigError(
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
      raise ConfigError(
          f'--workdir={workdir}: no such folder: train first (python main.py '
          '--config=FILE --workdir=DIR)'
      )
    if saved is None:
      raise ConfigError(
          f'{pathlib.Path(workdir) / CONFIG_FILE}: not found (a run of an '
          'older version?): pass --config=FILE'
      )
    config = saved
  else:
    check_matches_run(config, workdir, saved)
  return resolve(config, mode=mode)
