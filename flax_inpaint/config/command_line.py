"""Configs from the command line: --config files and --config.FIELD=VALUE overrides, as one-line errors."""

import difflib
import pathlib
import sys
import traceback
from typing import List, Optional, Tuple

from absl import flags
from ml_collections import config_flags

from flax_inpaint import errors
from flax_inpaint.config import config_lib
from flax_inpaint.config import schema

# Where a user who named no such field finds the fields.
FIELDS_HINT = 'flax-inpaint MODE --help lists the fields of each mode'


def _config_flag_error(argv, error) -> str:
  """One line for a --config.* override that failed to parse: the unknown field with a
  suggestion, or the bad value."""
  for arg in argv:
    if not arg.startswith('--config.'):
      continue
    path = arg[len('--config.') :].split('=', 1)[0].split('.')
    node, walked = schema.get_config(), 'config'
    for name in path:
      if not hasattr(node, 'keys') or name not in node:
        close = difflib.get_close_matches(
            name, list(node.keys()) if hasattr(node, 'keys') else [], n=1
        )
        hint = f' (did you mean "{close[0]}"?)' if close else ''
        return f'{arg}: {walked} has no field {name!r}{hint}; {FIELDS_HINT}'
      node, walked = node[name], f'{walked}.{name}'
  return str(error).splitlines()[0]


def _config_file_arg(argv) -> Optional[str]:
  """The value of --config=FILE (or `--config FILE`) in argv, or None."""
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg.split('=', 1)[1]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _raised_at(error: BaseException, path: pathlib.Path) -> str:
  """' (line N)' of the last frame of `error` in the file `path`, or ''."""
  if isinstance(error, SyntaxError) and error.lineno:
    return f' (line {error.lineno})'
  lines = [
      frame.lineno
      for frame in traceback.extract_tb(error.__traceback__)
      if pathlib.Path(frame.filename).resolve() == path.resolve()
  ]
  return f' (line {lines[-1]})' if lines else ''


def _check_config_file_exists(value: Optional[str]) -> None:
  """A missing --config file, in one line (ml_collections would report it only when the
  config is first used, in a traceback)."""
  if value is not None and not pathlib.Path(value.split(':', 1)[0]).expanduser().is_file():
    raise errors.UsageError(
        f'--config={value}: no such file (config files are in configs/, e.g. '
        '--config=configs/full.py)'
    )


def config_file_error(value: str) -> Optional[str]:
  """One line saying why the existing file --config=value cannot give a config (it raises,
  or has no get_config()), or None when it can."""
  path = pathlib.Path(value.split(':', 1)[0]).expanduser()
  try:
    config_lib.load_sibling(path, path.stem)
  except AttributeError as e:
    if "has no attribute 'get_config'" in str(e):
      return (
          f'--config={value}: defines no get_config(); a config file returns its '
          'ConfigDict from get_config() (see configs/test.py)'
      )
    return f'--config={value}: loading it raised AttributeError: {e}{_raised_at(e, path)}'
  except Exception as e:  # Whatever the user's file raises.
    text = e.msg if isinstance(e, SyntaxError) else str(e)
    first = text.splitlines()[0] if text else ''
    return (
        f'--config={value}: loading it raised {type(e).__name__}: {first}' f'{_raised_at(e, path)}'
    )
  return None


def parse_config_flags(argv) -> List[str]:
  """flags.FLAGS(argv) and the config file with its overrides, as one-line UsageErrors."""
  _check_config_file_exists(_config_file_arg(argv))
  try:
    rest = flags.FLAGS(argv)
    if 'config' in flags.FLAGS and flags.FLAGS['config'].value is not None:
      # A default file (the benchmarks') is not on the command line: checked here.
      _check_config_file_exists(config_flags.get_config_filename(flags.FLAGS['config']))
      flags.FLAGS.config  # Loads the file and overrides now.
    return rest
  except Exception as e:  # Sorted into one line below.
    if isinstance(e, errors.UsageError):
      raise
    config_file = _config_file_arg(argv)
    message = config_file_error(config_file) if config_file else None
    if message is None and not isinstance(e, (KeyError, AttributeError, flags.Error)):
      raise
    raise errors.UsageError(message or _config_flag_error(argv, e)) from e


def split_overrides(argv) -> Tuple[List[str], List[str]]:
  """(argv without --config.FIELD=VALUE, those overrides) when no --config file is given:
  they then apply to the workdir's config.json (see `overridden_saved_config`)."""
  if _config_file_arg(argv) is not None:
    return list(argv), []
  overrides = [arg for arg in argv[1:] if arg.startswith('--config.')]
  return [arg for arg in argv if arg not in overrides], overrides


def overridden_saved_config(workdir, overrides):
  """WORKDIR/config.json with `overrides` (--config.FIELD=VALUE) applied, parsed as absl
  parses them on a config file; None when the workdir has no config.json (the mode then
  says so in one line)."""
  saved = config_lib.read_config_json(workdir) if workdir else None
  if saved is None:
    return None
  argv = [sys.argv[0]] + list(overrides)
  values = flags.FlagValues()
  try:  # The overrides are parsed when the flag is defined, and again by values(argv).
    config_flags.DEFINE_config_dict('config', saved, flag_values=values, sys_argv=argv)
    values(argv)
    return values.config
  except (KeyError, AttributeError, flags.Error) as e:
    raise errors.UsageError(_config_flag_error(argv, e)) from e
