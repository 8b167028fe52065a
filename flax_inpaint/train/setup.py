"""One setup for every mode: the objects a run needs, built from one resolved config.

Training, evaluation, the benchmark, inpainting, serving and export all call `build`;
a mode that needs "almost the same setup" extends this function rather than writing a
second one. Inference builds no optimizer and loads no VGG16.
"""

import dataclasses
import pathlib
from typing import Any, Optional

from absl import logging
import jax
import ml_collections
import optax

from flax_inpaint.config import config_lib
from flax_inpaint.nn import models
from flax_inpaint.nn import vgg16
from flax_inpaint.train import checkpointing
from flax_inpaint.train import sharding
from flax_inpaint.train import steps
from flax_inpaint.weights import pretrained
from flax_inpaint.weights import vgg_weights


@dataclasses.dataclass(frozen=True)
class Components:
  """What a run is made of.

  Attributes:
    config: the resolved, frozen config (`config_lib.resolve`).
    mesh: the device mesh (one 'data' axis over every device of every process).
    model: the U-Net.
    tx: the optimizer (None for inference).
    vgg_params: frozen VGG16 params for the loss (None when no VGG term or for inference).
  """

  config: ml_collections.FrozenConfigDict
  mesh: jax.sharding.Mesh
  model: models.UNet
  tx: Optional[optax.GradientTransformation] = None
  vgg_params: Optional[Any] = None


def load_vgg_params(config):
  """The loss's frozen VGG16 params, or None when no VGG term is used."""
  if not config_lib.uses_vgg(config):
    return None
  if config.loss.vgg_weights == 'random':
    logging.warning('loss.vgg_weights=random: a RANDOM VGG16 (tests and benchmarks only).')
    return vgg16.init_random_params()
  return vgg_weights.load_vgg16(vgg_weights.resolve_weights_path(config.loss.vgg_weights))


def setup_compilation_cache(cache_dir: str):
  """XLA's persistent cache: a second run loads its programs instead of compiling them."""
  if cache_dir:
    path = pathlib.Path(cache_dir).expanduser()
    jax.config.update('jax_compilation_cache_dir', str(path))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
    jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)


def build(
    config: ml_collections.FrozenConfigDict,
    *,
    training: bool = True,
    mesh: Optional[jax.sharding.Mesh] = None,
) -> Components:
  """Compilation cache, mesh, model and, for training, the optimizer and the loss's VGG16
  params."""
  if not isinstance(config, ml_collections.FrozenConfigDict):
    raise TypeError('components.build takes the config from config_lib.resolve')
  setup_compilation_cache(config.compilation_cache_dir)
  mesh = sharding.make_mesh() if mesh is None else mesh
  model = models.create_model(config.model, config.impl)
  if not training:
    return Components(config=config, mesh=mesh, model=model)
  return Components(
      config=config,
      mesh=mesh,
      model=model,
      tx=steps.make_optimizer(config.train),
      vgg_params=load_vgg_params(config),
  )


def restore_run_variables(components: Components, workdir, step=None, train_config=None):
  """The latest (or `step`'s) params and batch_stats of `workdir`: (variables, step). The
  params are the moving average when the run kept one: `train_config` is the run's
  (default: the components' config)."""
  train_config = components.config.train if train_config is None else train_config
  abstract = steps.abstract_variables(
      components.model, components.config.data.image_size, components.mesh
  )
  return checkpointing.restore_variables(
      workdir, abstract, step, params_key=steps.inference_params_key(train_config)
  )


def trained_source(source, option: str = '--model') -> pathlib.Path:
  """The folder of a trained model: a training workdir, or a release (a name of
  `pretrained.names()` or a release folder).

  Raises:
    errors.ConfigError: neither (one line naming `option`).
  """
  path = pathlib.Path(str(source)).expanduser()
  if path.is_dir() and not pretrained.is_release(path):
    return path
  return pretrained.release_dir(source, option)


def load_trained(components: Components, source, step=None, option: str = '--model'):
  """(variables, step) of a trained model (`trained_source`): a workdir's latest or
  `step`'s checkpoint, or a release's params.

  Raises:
    errors.ConfigError: `source` is neither, or its model differs from the config's.
    errors.CheckpointError: the workdir has no usable checkpoint.
  """
  directory = trained_source(source, option)
  saved = config_lib.read_config_json(directory)
  config_lib.check_matches_run(components.config, directory, saved)
  if not pretrained.is_release(directory):
    # Whether the params are a moving average is the trained run's choice, not this one's.
    return restore_run_variables(components, directory, step, saved.train if saved else None)
  params, trained_step = pretrained.read_params(directory)
  variables = {'params': params, 'batch_stats': {}}
  return jax.device_put(variables, sharding.replicated(components.mesh)), trained_step
