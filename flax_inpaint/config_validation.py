"""Checks a config before anything is built or compiled; errors name the field."""

import jax

from configs import default
from flax_inpaint import losses
from flax_inpaint import models
from flax_inpaint import ops
from flax_inpaint import vgg

SOURCES = ('samples', 'folder', 'album_covers')
DTYPES = ('float32', 'bfloat16')


class ConfigError(ValueError):
  pass


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


def validate(config, *, num_devices=None, mode='train'):
  """Raises ConfigError naming the first bad field."""
  unknown = list(_unknown_fields(config, default.get_config()))
  if unknown:
    raise ConfigError(f'Unknown config field(s): {", ".join("config." + u for u in unknown)}'
                      ' (see configs/default.py for every field)')
  _choice(config.model.size, [s for s in models.WIDTHS], 'model.size')
  _choice(config.model.bottleneck, models.BOTTLENECKS, 'model.bottleneck')
  _choice(config.model.norm, models.NORMS, 'model.norm')
  _choice(config.model.upsample, models.UPSAMPLES, 'model.upsample')
  _choice(config.model.dtype, DTYPES, 'model.dtype')
  _choice(config.model.pool_impl, ops.POOL_IMPLS, 'model.pool_impl')
  _choice(config.model.upsample_impl, ops.UPSAMPLE_IMPLS, 'model.upsample_impl')
  _choice(config.model.relu_impl, ops.RELU_IMPLS, 'model.relu_impl')
  _choice(config.data.source, SOURCES, 'data.source')
  _choice(config.data.fit, ('crop', 'resize'), 'data.fit')
  _choice(config.train.schedule, ('constant', 'cosine'), 'train.schedule')
  _choice(config.loss.perceptual_distance, ('l1', 'l2'), 'loss.perceptual_distance')
  multiple = models.size_multiple(config.model)
  if config.data.image_size % multiple:
    raise ConfigError(f'config.data.image_size={config.data.image_size} is not divisible by '
                      f'2^levels={multiple} of model.size={config.model.size!r}')
  num_devices = num_devices or jax.device_count()
  if mode == 'train':
    for field in ('num_steps', 'batch_size', 'checkpoint_every', 'log_every', 'sample_every'):
      if config.train[field] <= 0:
        raise ConfigError(f'config.train.{field}={config.train[field]} must be positive')
    if config.train.batch_size % num_devices:
      raise ConfigError(f'config.train.batch_size={config.train.batch_size} (global) is not '
                        f'divisible by the {num_devices} devices')
    if config.train.lr <= 0:
      raise ConfigError(f'config.train.lr={config.train.lr} must be positive')
  if config.masks.patch_size > config.data.image_size or config.masks.patch_size <= 0:
    raise ConfigError(f'config.masks.patch_size={config.masks.patch_size} must be in '
                      f'[1, data.image_size={config.data.image_size}]')
  if config.masks.num_patches < 1:
    raise ConfigError(f'config.masks.num_patches={config.masks.num_patches} must be >= 1')
  if config.data.source == 'folder' and not config.data.dir:
    raise ConfigError("config.data.source='folder' needs --config.data.dir=FOLDER")
  if len(config.loss.perceptual_layers) != len(config.loss.perceptual_layer_weights):
    raise ConfigError('config.loss.perceptual_layer_weights needs one weight per entry '
                      f'of config.loss.perceptual_layers={tuple(config.loss.perceptual_layers)}')
  if config.model.input_channels < 4:
    raise ConfigError(f'config.model.input_channels={config.model.input_channels} must be '
                      '>= 4 (RGB + hole mask; 8 pads them for faster GPU convs)')
  if config.loss.vgg_input_channels < 3:
    raise ConfigError(f'config.loss.vgg_input_channels={config.loss.vgg_input_channels} must '
                      'be >= 3 (the images\' channels; 8 pads them for faster GPU convs)')
  for layer in config.loss.perceptual_layers:
    _choice(layer, vgg.TAPS, 'loss.perceptual_layers')
  try:
    losses.resolve_loss_config(config.loss)
  except ValueError as e:
    raise ConfigError(str(e)) from e
