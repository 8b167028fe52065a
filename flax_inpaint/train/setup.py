"""One setup for every mode: the objects a run needs, its starting state, and trained models.

`build(config)` makes the run's parts from the config `validation.resolve` returned;
`initial_state(components, workdir)` is where a training run starts (its checkpoint, else
`train.init_from`'s params, else a fresh init); `load_trained(source)` is the one way to
load a trained run or a release for eval, export, serve, inpaint and the tools. A mode that
needs "almost the same setup" extends these functions rather than writing a second one.
Inference builds no optimizer and loads no VGG16.
"""

import dataclasses
import pathlib
from typing import Any, Optional

from absl import logging
import jax
import ml_collections
import optax

from flax_inpaint import errors
from flax_inpaint.config import config_lib
from flax_inpaint.nn import discriminator as discriminator_lib
from flax_inpaint.nn import models
from flax_inpaint.nn import vgg16
from flax_inpaint.train import checkpointing
from flax_inpaint.train import sharding
from flax_inpaint.train import steps
from flax_inpaint.train import validation
from flax_inpaint.weights import pretrained
from flax_inpaint.weights import vgg_weights

INIT_FROM_OPTION = '--config.train.init_from'


@dataclasses.dataclass(frozen=True)
class Components:
  """What a run is made of.

  Attributes:
    config: the resolved, frozen config (`validation.resolve`).
    mesh: the device mesh (one 'data' axis over every device of every process).
    model: the U-Net.
    tx: the optimizer (None for inference).
    vgg_params: frozen VGG16 params for the loss (None when no VGG term or for inference).
    discriminator: the PatchGAN of adversarial training (None when
      config.discriminator.weight and feature_matching_weight are 0, or for inference).
    disc_tx: the discriminator's optimizer (None without one).
  """

  config: ml_collections.FrozenConfigDict
  mesh: jax.sharding.Mesh
  model: models.UNet
  tx: Optional[optax.GradientTransformation] = None
  vgg_params: Optional[Any] = None
  discriminator: Optional[discriminator_lib.PatchDiscriminator] = None
  disc_tx: Optional[optax.GradientTransformation] = None


@dataclasses.dataclass(frozen=True)
class Trained:
  """A trained model ready for inference (`load_trained`).

  Attributes:
    components: `build(config, training=False)` of the resolved config.
    variables: {'params', 'batch_stats'}, replicated on the mesh.
    step: the training step of the params (a release's: the last step of its run).
    directory: the training run's workdir or the release's folder.
  """

  components: Components
  variables: Any
  step: Optional[int]
  directory: pathlib.Path

  @property
  def config(self) -> ml_collections.FrozenConfigDict:
    return self.components.config

  @property
  def description(self) -> str:
    """How logs name it: 'album-covers, 9,200 steps', or 'the checkpoint of step 600 in W'."""
    if pretrained.is_release(self.directory):
      return pretrained.describe(self.directory, self.step)
    return f'the checkpoint of step {self.step} in {self.directory}'


def load_vgg_params(config):
  """The loss's frozen VGG16 params, or None when no VGG term is used."""
  if not validation.uses_vgg(config):
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
    raise TypeError('components.build takes the config from validation.resolve')
  setup_compilation_cache(config.compilation_cache_dir)
  mesh = sharding.make_mesh() if mesh is None else mesh
  model = models.create_model(config.model, config.impl)
  if not training:
    return Components(config=config, mesh=mesh, model=model)
  discriminator = disc_tx = None
  if validation.uses_discriminator(config):
    discriminator = discriminator_lib.PatchDiscriminator(tuple(config.discriminator.widths))
    disc_tx = optax.adam(config.discriminator.lr)
  return Components(
      config=config,
      mesh=mesh,
      model=model,
      tx=steps.make_optimizer(config.train),
      vgg_params=load_vgg_params(config),
      discriminator=discriminator,
      disc_tx=disc_tx,
  )


# ----------------------------------------------------------------------------------
# A training run's starting state.


def initial_state(components: Components, workdir) -> steps.TrainState:
  """The state a training run starts from, after checking and writing WORKDIR/config.json:
  the latest checkpoint of `workdir`, else the params of `config.train.init_from` (a run or
  a release) with a fresh optimizer, else a fresh init.

  Raises:
    errors.ConfigError: the workdir's run trained another model, or init_from is neither a
      run nor a release (before anything is saved).
  """
  config = components.config
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  config_lib.check_matches_run(config, workdir)
  config_lib.write_config_json(config, workdir)
  init_from = config.train.init_from
  fresh = not checkpointing.checkpoint_dir(workdir).is_dir()
  if init_from and fresh:
    trained_source(init_from, INIT_FROM_OPTION)  # Fails before the first save.
  size, seed, ema = config.data.image_size, config.train.seed, steps.uses_ema(config.train)
  model, tx, mesh = components.model, components.tx, components.mesh
  gan = {'discriminator': components.discriminator, 'disc_tx': components.disc_tx}
  abstract = steps.abstract_train_state(model, tx, size, seed, mesh, ema, **gan)
  state = checkpointing.restore_latest(workdir, abstract)
  if state is not None:
    logging.info(
        'Resuming from the checkpoint of step %d in %s',
        int(state.step),
        checkpointing.checkpoint_dir(workdir),
    )
    return state
  init_params = None
  if init_from:
    variables, _ = trained_variables(components, init_from, option=INIT_FROM_OPTION, adding=True)
    init_params = variables['params']
    logging.info('Starting from the params of %s', init_from)
  logging.info('No checkpoint in %s: starting from step 0', checkpointing.checkpoint_dir(workdir))
  return steps.create_train_state(model, tx, size, seed, mesh, ema, init_params, **gan)


# ----------------------------------------------------------------------------------
# Trained models: a training run's checkpoint or a release.


def trained_source(source=None, option: str = '--model') -> pathlib.Path:
  """The folder of a trained model: a training workdir, or a release (a name of
  `pretrained.names()`, a release folder, or None: `pretrained.DEFAULT_RELEASE`).

  Raises:
    errors.ConfigError: neither (one line naming `option`).
  """
  if source is not None:
    path = pathlib.Path(str(source)).expanduser()
    if path.is_dir() and not pretrained.is_release(path):
      return path
  return pretrained.release_dir(source, option)


def restore_run_variables(
    components: Components, workdir, step=None, train_config=None, model_config=None
):
  """The latest (or `step`'s) params and batch_stats of `workdir`: (variables, step). The
  params are the moving average when the run kept one: `train_config` and `model_config`
  are the run's (default: the components' config; another model config: a model that the
  components' model adds parts to, see `config_lib.ADDABLE_FIELDS`)."""
  train_config = components.config.train if train_config is None else train_config
  model = components.model
  if model_config is not None and any(
      model_config[field] != components.config.model[field] for field in config_lib.MODEL_FIELDS
  ):
    model = models.create_model(model_config, components.config.impl)
  abstract = steps.abstract_variables(model, components.config.data.image_size, components.mesh)
  return checkpointing.restore_variables(
      workdir, abstract, step, params_key=steps.inference_params_key(train_config)
  )


def _read_variables(components: Components, directory: pathlib.Path, saved, step):
  """(variables, step) of the trained model in `directory` (`saved`: its config.json)."""
  if not pretrained.is_release(directory):
    # Whether the params are a moving average is the trained run's choice, not this one's.
    if saved is None:
      return restore_run_variables(components, directory, step)
    return restore_run_variables(components, directory, step, saved.train, saved.model)
  params, trained_step = pretrained.read_params(directory)
  variables = {'params': params, 'batch_stats': {}}
  return jax.device_put(variables, sharding.replicated(components.mesh)), trained_step


def trained_variables(
    components: Components, source, step=None, option: str = '--model', adding: bool = False
):
  """(variables, step) of a trained model (`trained_source`) for `components`' model: a
  workdir's latest or `step`'s checkpoint, or a release's params. `adding`: the components'
  model may add parts the trained one lacks (`config_lib.ADDABLE_FIELDS`); the variables
  are the trained model's.

  Raises:
    errors.ConfigError: `source` is neither, or its model differs from the config's.
    errors.CheckpointError: the workdir has no usable checkpoint.
  """
  directory = trained_source(source, option)
  saved = config_lib.read_config_json(directory)
  config_lib.check_matches_run(components.config, directory, saved, adding=adding)
  return _read_variables(components, directory, saved, step)


def load_trained(
    source=None, config=None, *, mode: str = 'inpaint', step=None, option: str = '--model'
) -> Trained:
  """A trained run or a release, ready for inference: its resolved config, model and
  variables, its config.json read once.

  Args:
    source: a training workdir or a release folder (None: the default release;
      `trained_source` turns a release's name into its folder).
    config: None for the run's own config.json; else a config for the same model (one that
      `validation.resolve` returned is used as it is, any other is resolved for `mode`).
    mode: the mode the config is resolved for ('eval', 'inpaint', 'serve', 'export').
    step: the checkpoint step of a workdir (None: the latest).
    option: the flag named in errors about `source`.

  Raises:
    errors.ConfigError, errors.CheckpointError: one line each.
  """
  if source is None:
    source = pretrained.release_dir()
  if config is None and not pathlib.Path(source).expanduser().is_dir():
    raise errors.ConfigError(
        f'--workdir={source}: no such folder: train first (python main.py '
        '--config=FILE --workdir=DIR)'
    )
  directory = trained_source(source, option)
  saved = config_lib.read_config_json(directory)
  if config is None:
    if saved is None:
      raise errors.ConfigError(
          f'{directory / config_lib.CONFIG_FILE}: not found (a run of an older version?): '
          'pass --config=FILE'
      )
    config = saved
  else:
    config_lib.check_matches_run(config, directory, saved)
  if not isinstance(config, ml_collections.FrozenConfigDict):
    config = validation.resolve(config, mode=mode)
  components = build(config, training=False)
  variables, trained_step = _read_variables(components, directory, saved, step)
  return Trained(components, variables, trained_step, directory)


def predict_fn_and_multiple(components: Components):
  """(jitted predict(variables, uint8 images, bool holes), the multiple of window sides)."""
  return steps.make_uint8_predict_fn(components.model), models.size_multiple(
      components.config.model
  )
