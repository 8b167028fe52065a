"""config.json: the config a run really used, written with the run and read back.

Every training run writes its resolved config to WORKDIR/config.json (`write_config_json`);
evaluation, inpainting, serving, export and `init_from` read it (`read_config_json`) and
refuse a config whose model differs (`check_matches_run`). Config files chain by path
(`load_sibling`). Checking and resolving a config is `train/validation.py`'s job: this module
only reads and writes.
"""

import importlib.util
import json
import pathlib
from typing import Any, Mapping, Optional

import jax
import ml_collections

from flax_inpaint import errors
from flax_inpaint.config import schema

CONFIG_FILE = 'config.json'
# The fields that shape the params: a checkpoint restores only into the same values.
MODEL_FIELDS = ('size', 'bottleneck', 'norm', 'upsample', 'coarse_fill', 'attention')
# Parts a model may add to the one it starts from (`train.init_from`): (field, the value of
# a model without the part). Each adds params that start it as the same function.
ADDABLE_FIELDS = (('attention', 'none'),)


def load_sibling(config_file: str, name: str) -> ml_collections.ConfigDict:
  """`get_config()` of configs/<name>.py beside `config_file` (config files chain by path,
  so the library never imports a top-level `configs` package)."""
  path = pathlib.Path(config_file).resolve().parent / f'{name}.py'
  spec = importlib.util.spec_from_file_location(f'flax_inpaint_config_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


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


def check_matches_run(config, workdir, saved=None, *, adding: bool = False) -> None:
  """Raises errors.ConfigError when `config`'s model differs from the one that trained `workdir`
  (`saved`: its config.json, when the caller has read it already). `adding`: `config`'s model
  may add the parts of ADDABLE_FIELDS that the saved one lacks (to start from its params)."""
  saved = read_config_json(workdir) if saved is None else saved
  if saved is None:
    return
  added = {field for field, absent in ADDABLE_FIELDS if adding and saved.model[field] == absent}
  for field in MODEL_FIELDS:
    if config.model[field] != saved.model[field] and field not in added:
      raise errors.ConfigError(
          f'config.model.{field}={config.model[field]!r} differs from '
          f'{saved.model[field]!r} in {pathlib.Path(workdir) / CONFIG_FILE}, the run that '
          'trained these checkpoints: omit --config to use it, or use another --workdir'
      )
