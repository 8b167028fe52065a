"""Released models shipped inside the package: their format (written and read here) and
their names.

A release is a folder `flax_inpaint/weights/releases/NAME/` with the training run's `config.json`,
`params.npz` (the params flattened by '/'-joined path, stored as float16 or float32, plus
the step that trained them), `release.json` (the steps of its whole training, every phase
from `init_from` on: the name logs give it) and `MODEL_CARD.md`. `Inpainter.from_pretrained(NAME)`,
`--model=NAME` and `--config.train.init_from=NAME` read it.
"""

import json
import pathlib
from typing import Optional, Tuple

from flax import traverse_util
import numpy as np

from flax_inpaint import errors
from flax_inpaint.config import config_lib

RELEASES_DIR = pathlib.Path(__file__).resolve().parent / 'releases'
# The model `flax-inpaint inpaint/serve/export/eval` use when neither --model nor
# --workdir is given.
DEFAULT_RELEASE = 'album-covers'
PARAMS_FILE = 'params.npz'
CARD_FILE = 'MODEL_CARD.md'
INFO_FILE = 'release.json'
_STEP_KEY = '__step__'
STORAGE_DTYPES = ('float16', 'float32')


def names() -> list:
  """The released models shipped in this package."""
  if not RELEASES_DIR.is_dir():
    return []
  return sorted(p.name for p in RELEASES_DIR.iterdir() if is_release(p))


def is_release(path) -> bool:
  return (pathlib.Path(path).expanduser() / PARAMS_FILE).is_file()


def release_dir(name_or_dir=None, option: str = '--model') -> pathlib.Path:
  """The folder of a release: a name of `names()` (None: DEFAULT_RELEASE), or a release
  folder written by `write`.

  Raises:
    errors.ConfigError: neither (one line naming `option`, listing the released names).
  """
  if name_or_dir is None:
    name_or_dir = DEFAULT_RELEASE
  if is_release(name_or_dir):
    return pathlib.Path(name_or_dir).expanduser()
  if is_release(RELEASES_DIR / str(name_or_dir)):
    return RELEASES_DIR / str(name_or_dir)
  raise errors.ConfigError(
      f'{option}={name_or_dir}: no released model of that name (released: '
      f'{", ".join(names()) or "none"}); pass one of them or a folder holding {PARAMS_FILE}'
  )


def write(
    params,
    step: int,
    config,
    out_dir,
    storage_dtype: str = 'float16',
    total_steps: Optional[int] = None,
) -> pathlib.Path:
  """Writes `params` (a nested dict of arrays), the step and the run's config as a release.

  `storage_dtype` float16 halves the file; `read_params` returns float32 either way.
  `total_steps`: the steps of every phase that trained the params (None: `step`).
  """
  if storage_dtype not in STORAGE_DTYPES:
    raise ValueError(f'storage_dtype={storage_dtype!r}: use one of {list(STORAGE_DTYPES)}')
  out_dir = pathlib.Path(out_dir).expanduser()
  out_dir.mkdir(parents=True, exist_ok=True)
  flat = traverse_util.flatten_dict(params, sep='/')
  arrays = {key: np.asarray(value, np.float32).astype(storage_dtype) for key, value in flat.items()}
  np.savez(out_dir / PARAMS_FILE, **arrays, **{_STEP_KEY: np.asarray(step, np.int64)})
  config_lib.write_config_json(config, out_dir)
  info = {'total_steps': int(step if total_steps is None else total_steps)}
  (out_dir / INFO_FILE).write_text(json.dumps(info, indent=2) + '\n')
  return out_dir


def describe(directory, step: Optional[int] = None) -> str:
  """How logs name a release: 'album-covers, 9,200 steps' (every phase of its training;
  without release.json, `step`)."""
  directory = pathlib.Path(directory)
  info = directory / INFO_FILE
  steps = json.loads(info.read_text())['total_steps'] if info.is_file() else step
  return directory.name if steps is None else f'{directory.name}, {steps:,} steps'


def read_params(directory) -> Tuple[dict, Optional[int]]:
  """(params as a nested dict of float32 numpy arrays, the step that trained them)."""
  with np.load(pathlib.Path(directory) / PARAMS_FILE) as stored:
    step = int(stored[_STEP_KEY]) if _STEP_KEY in stored.files else None
    flat = {key: stored[key].astype(np.float32) for key in stored.files if key != _STEP_KEY}
  return traverse_util.unflatten_dict(flat, sep='/'), step


def read_config(directory):
  """The release's config (its training run's config.json)."""
  config = config_lib.read_config_json(directory)
  if config is None:
    raise errors.ConfigError(
        f'{pathlib.Path(directory) / config_lib.CONFIG_FILE}: not '
        'found: a release needs the config.json of its run'
    )
  return config
