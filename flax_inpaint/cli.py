"""The command line: `python main.py --mode=MODE ...` or, installed, `flax-inpaint MODE ...`.

  flax-inpaint --help                              (the modes, one line each)
  flax-inpaint MODE --help                         (a mode's flags and an example)
  flax-inpaint train --config=configs/full.py --workdir=DIR [--config.train.lr=1e-3]
  flax-inpaint eval --workdir=DIR                  (the run's own config.json)
  flax-inpaint eval --model=album-covers --output=OUT   (a released model's table)
  flax-inpaint inpaint --input=IMG_OR_DIR [--mask=MASK_OR_DIR] --output=OUT   (the release)
  flax-inpaint inpaint --workdir=DIR --input=IMG_OR_DIR [--mask=MASK_OR_DIR] --output=OUT
  flax-inpaint serve [--workdir=DIR | --model=NAME] [--host=127.0.0.1] [--port=8765]
  flax-inpaint export --workdir=DIR --output=FILE
  flax-inpaint prepare --config=configs/full.py --config.data.manual_dir=KAGGLE \
      --config.data.data_dir=TFDS_DIR
  flax-inpaint lr_sweep --config=configs/lr_sweep.py --workdir=DIR

Each mode is a leaf module; this file only parses flags and dispatches. A user error
(bad flag, config file or field, missing file, bad image) is one line on stderr and exit
status 2; a run that diverged is one line and exit status 3. Modes that read a trained
workdir take `--config.FIELD=VALUE` overrides on top of its config.json without --config;
they use a released model (`--model=NAME`, default `pretrained.DEFAULT_RELEASE`) when no
--workdir is given.
`run_app` gives the benchmarks the same one-line errors and quiet console.
"""

import importlib
import logging as py_logging
import pathlib
import signal
import sys
from typing import List, Optional

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from flax_inpaint import errors
from flax_inpaint.config import command_line
from flax_inpaint.config import schema
from flax_inpaint.data import user_files
from flax_inpaint.train import distributed
from flax_inpaint.weights import pretrained

MODES = {
    'train': 'train a model on a config (resumes automatically in the same workdir)',
    'eval': 'evaluate a model against the classical fills (PSNR, SSIM, LPIPS)',
    'prepare': 'build the album-covers TFDS dataset from the Kaggle download',
    'inpaint': 'repair your own image files (the released model, or a trained workdir)',
    'serve': 'the local web page (and its API) to paint holes and repair them',
    'export': 'write a model as one file that needs only jax and numpy',
    'lr_sweep': 'the learning-rate search: one short run per rate',
}
# The module in modes/ that runs each mode (its `main(config, workdir, flag_values)`).
MODE_MODULES = {
    'train': 'train',
    'lr_sweep': 'train',
    'eval': 'eval',
    'prepare': 'prepare',
    'inpaint': 'inpaint',
    'serve': 'serve',
    'export': 'export',
}
# Modes that read a trained workdir: without --config they use WORKDIR/config.json.
TRAINED_MODES = ('eval', 'inpaint', 'serve', 'export')
# Each mode's own flags (besides --config.FIELD=VALUE) and an example, for `MODE --help`.
MODE_FLAGS = {
    'train': ('config', 'workdir'),
    'eval': ('workdir', 'model', 'output', 'config'),
    'prepare': ('config',),
    'inpaint': (
        'input',
        'mask',
        'output',
        'example',
        'model',
        'workdir',
        'mask_threshold',
        'max_pixels',
        'overwrite',
        'config',
    ),
    'serve': ('model', 'workdir', 'host', 'port', 'config'),
    'export': ('output', 'model', 'workdir', 'overwrite', 'config'),
    'lr_sweep': ('config', 'workdir'),
}
EXAMPLES = {
    'train': '--config=configs/overfit.py --workdir=/tmp/flax_inpaint_demo',
    'eval': '--workdir=/tmp/flax_inpaint_demo',
    'prepare': (
        '--config=configs/full.py --config.data.manual_dir=KAGGLE_ZIP '
        '--config.data.data_dir=TFDS_DIR'
    ),
    'inpaint': '--input=photos/ --mask=masks/ --output=repaired/',
    'serve': '--port=8765',
    'export': '--output=album-covers.fipx',
    'lr_sweep': '--config=configs/lr_sweep.py --workdir=/tmp/lr_sweep',
}
# What each flag means in each mode that takes it ('*': every such mode). `MODE --help`
# shows its mode's meaning only; absl's own help joins them.
_RUN_CONFIG = 'the config file (configs/*.py)'
_TRAINED_CONFIG = (
    "a config file for the same model; default: the run's (or release's) config.json, with "
    'any --config.FIELD=VALUE on top'
)
FLAG_HELP = {
    'config': {
        'train': _RUN_CONFIG,
        'lr_sweep': _RUN_CONFIG,
        'prepare': _RUN_CONFIG,
        '*': _TRAINED_CONFIG,
    },
    'workdir': {
        'train': "the run's folder: checkpoints, config.json, TensorBoard events, sample "
        'grids (a rerun resumes from its checkpoints)',
        'lr_sweep': "the sweep's folder: one run per learning rate",
        'eval': 'the training run to evaluate; its tables go to WORKDIR/eval',
        '*': 'a training run to use instead of a released model',
    },
    'model': {'*': 'a released model to use; without --model and --workdir: album-covers'},
    'input': {'inpaint': 'an image file or a folder of images'},
    'example': {
        'inpaint': 'repair the example photo shipped with the package under its mask '
        '(instead of --input and --mask)'
    },
    'mask': {
        'inpaint': 'a mask file, or a folder with a mask named like each image (holes where '
        "the mask is >= --mask_threshold); omitted: the images' alpha channel"
    },
    'mask_threshold': {'inpaint': 'mask pixels >= this are holes'},
    'output': {
        'inpaint': 'the folder for the repaired PNGs',
        'export': 'the file to write, e.g. model.fipx',
        'eval': "the folder for a released model's tables (a run's go to WORKDIR/eval)",
    },
    'max_pixels': {
        'inpaint': 'the largest image or mask read, in pixels (checked before decoding)'
    },
    'overwrite': {
        'inpaint': 'redo and replace results that exist (a rerun otherwise skips them)',
        'export': 'replace the file if it exists',
    },
    'host': {'serve': 'the address to bind (local only by default)'},
    'port': {'serve': 'the port'},
}
# The config sections each mode reads (`MODE --help` lists their fields and defaults).
MODE_CONFIG = {
    'train': ('data', 'masks', 'model', 'loss', 'discriminator', 'train', 'eval', 'impl'),
    'lr_sweep': ('sweep', 'train'),
    'eval': ('eval', 'masks'),
    'prepare': ('data',),
    'inpaint': ('inpaint',),
    'serve': ('serve', 'inpaint'),
    'export': ('inpaint',),
}
HELP_FLAGS = ('--help', '-h', '--helpshort', '-?')
# INFO lines of libraries that tell a user nothing: jax's backend probing ("Unable to
# initialize backend 'tpu'"), matplotlib's font cache, orbax's per-save chatter.
_QUIET_PATHS = ('/jax/_src/', '/matplotlib/', '/orbax/')

FLAGS = flags.FLAGS


_defined = []


def define_flags() -> None:
  """main.py's flags, once per process (not at import: the benchmarks import this module
  for run_app and define their own)."""
  if _defined:
    return
  _defined.append(True)
  config_flags.DEFINE_config_file('config', None, _joined_help('config'), lock_config=True)
  flags.DEFINE_string('workdir', None, _joined_help('workdir'))
  flags.DEFINE_string('model', None, _joined_help('model'))
  flags.DEFINE_enum('mode', 'train', list(MODES), 'What to do.')
  flags.DEFINE_string('input', None, _joined_help('input'))
  flags.DEFINE_bool('example', False, _joined_help('example'))
  flags.DEFINE_string('mask', None, _joined_help('mask'))
  flags.DEFINE_integer('mask_threshold', user_files.HOLE_THRESHOLD, _joined_help('mask_threshold'))
  flags.DEFINE_string('output', None, _joined_help('output'))
  flags.DEFINE_integer('max_pixels', user_files.MAX_PIXELS, _joined_help('max_pixels'))
  flags.DEFINE_bool('overwrite', False, _joined_help('overwrite'))
  flags.DEFINE_string('host', '127.0.0.1', _joined_help('host'))
  flags.DEFINE_integer('port', 8765, _joined_help('port'))


# ----------------------------------------------------------------------------------
# A quiet console.


class _QuietLibraries(py_logging.Filter):
  """Drops libraries' INFO chatter and clu's hyperparameter dump (config.json and
  TensorBoard hold them); warnings and errors always show."""

  def filter(self, record):
    if record.levelno >= py_logging.WARNING:
      return True
    if any(part in record.pathname for part in _QUIET_PATHS):
      return False
    return not ('/clu/' in record.pathname and str(record.msg).startswith('[Hyperparameters]'))


def quiet_console() -> None:
  """Installs the filter on absl's handler (the one every log line goes through)."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietLibraries) for f in handler.filters):
    handler.addFilter(_QuietLibraries())


# ----------------------------------------------------------------------------------
# Help.


def _requested_mode(argv) -> Optional[str]:
  """The mode named on the command line (positional or --mode=), or None."""
  if len(argv) > 1 and not argv[1].startswith('-'):
    return argv[1]
  for arg in argv[1:]:
    if arg.startswith('--mode='):
      return arg.split('=', 1)[1]
  return None


def _command(argv, mode) -> str:
  """How the user called us, for examples: `python main.py --mode=X` or `flax-inpaint X`."""
  if pathlib.Path(argv[0]).name == 'main.py':
    return 'python main.py' + (f' --mode={mode}' if mode else '')
  return 'flax-inpaint' + (f' {mode}' if mode else '')


def _joined_help(name: str) -> str:
  """A flag's meanings in every mode, for absl's own help."""
  meanings = FLAG_HELP[name]
  if len(meanings) == 1:
    mode, text = next(iter(meanings.items()))
    return text if mode == '*' else f'{mode}: {text}'
  return '; '.join(f'{"other modes" if mode == "*" else mode}: {t}' for mode, t in meanings.items())


def _flag_line(name: str, mode: str) -> str:
  flag, meanings = FLAGS[name], FLAG_HELP[name]
  default = (
      '' if flag.default in (None, '') or name == 'config' else (f' (default: {flag.default})')
  )
  return f'  --{name:<16}{meanings.get(mode, meanings.get("*"))}{default}'


def _config_lines(mode: str) -> List[str]:
  """The config fields `mode` reads, with their defaults."""
  defaults, lines = schema.get_config(), []
  for section in MODE_CONFIG[mode]:
    for field, value in defaults[section].items():
      lines.append(f'  {section}.{field} = {value!r}')
  return lines


def help_text(argv, mode: Optional[str] = None) -> str:
  """The modes, one line each; or, for a mode, its flags and an example."""
  if mode is None:
    width = max(len(m) for m in MODES)
    return '\n'.join(
        [f'usage: {_command(argv, "MODE")} [flags]', '', 'modes:']
        + [f'  {m:<{width}}  {description}' for m, description in MODES.items()]
        + [
            '',
            f'{_command(argv, "MODE")} --help: the flags of a mode and an example; '
            "--helpfull: every mode's.",
        ]
    )
  return '\n'.join(
      [
          f'{_command(argv, mode)}: {MODES[mode]}',
          '',
          'example:',
          f'  {_command(argv, mode)} {EXAMPLES[mode]}',
          '',
          'flags:',
      ]
      + [_flag_line(name, mode) for name in MODE_FLAGS[mode]]
      + ['', 'config fields (--config.FIELD=VALUE), with their defaults:']
      + _config_lines(mode)
  )


def _maybe_print_help(argv) -> bool:
  """Prints the help asked for with --help or -h (--helpfull: every mode's); True when it
  did."""
  if '--helpfull' in argv[1:]:
    print('\n\n'.join([help_text(argv)] + [help_text(argv, mode) for mode in MODES]))
    return True
  if not any(arg in HELP_FLAGS for arg in argv[1:]):
    return False
  mode = _requested_mode(argv)
  if mode is not None and mode not in MODES:
    raise errors.UsageError(f'no mode {mode!r}; modes are {", ".join(MODES)}')
  print(help_text(argv, mode))
  return True


# ----------------------------------------------------------------------------------
# Config files and overrides, with one-line errors.


# --config.FIELD=VALUE given without --config, for the trained modes.
_overrides_without_config: List[str] = []


def parse_flags(argv):
  """main.py's flag parsing: `flax-inpaint MODE` as --mode=MODE, one-line errors."""
  if len(argv) > 1 and argv[1] in MODES:  # `flax-inpaint serve ...` == `--mode=serve`.
    argv = [argv[0], f'--mode={argv[1]}'] + argv[2:]
  argv, overrides = command_line.split_overrides(argv)
  _overrides_without_config[:] = overrides
  return command_line.parse_config_flags(argv)


# ----------------------------------------------------------------------------------
# Dispatch.


def _mode_config(mode, workdir):
  """--config's config; for a trained mode without it, None (the workdir's config.json) or
  config.json with the command line's overrides."""
  config = FLAGS.config
  if config is not None or not _overrides_without_config:
    if config is None and mode not in TRAINED_MODES:
      raise errors.UsageError(f'--mode={mode} needs --config=FILE (e.g. configs/full.py)')
    return config
  if mode not in TRAINED_MODES:
    raise errors.UsageError(
        f'{_overrides_without_config[0]}: --mode={mode} needs --config=FILE '
        '(e.g. configs/full.py) for overrides to apply to'
    )
  return command_line.overridden_saved_config(workdir, _overrides_without_config)


def _trained_source(mode) -> str:
  """The folder a trained mode reads: --workdir, or the release of --model (default
  pretrained.DEFAULT_RELEASE)."""
  if FLAGS.model and FLAGS.workdir:
    raise errors.UsageError(
        f'--model={FLAGS.model} and --workdir={FLAGS.workdir}: give one of them '
        '(--workdir: a training run; --model: a released model)'
    )
  if FLAGS.workdir:
    return FLAGS.workdir
  if not FLAGS.model and not pretrained.names():
    raise errors.UsageError(
        f'--mode={mode} needs --workdir=DIR (a training run): no released model '
        'is shipped in this version'
    )
  release = str(pretrained.release_dir(FLAGS.model))
  if mode == 'eval' and not FLAGS.output:
    raise errors.UsageError(
        '--mode=eval of the released model needs --output=DIR for its tables '
        '(or --workdir=DIR to evaluate a training run)'
    )
  return release


def main(argv):
  if len(argv) > 1:
    raise errors.UsageError(f'unexpected arguments {argv[1:]}: modes are {", ".join(MODES)}')
  mode, workdir = FLAGS.mode, FLAGS.workdir
  if mode in TRAINED_MODES:
    workdir = _trained_source(mode)
  elif FLAGS.model:
    raise errors.UsageError(
        f'--model is for {", ".join(TRAINED_MODES)}; --mode={mode} trains: to '
        'start from a released model pass --config.train.init_from=NAME'
    )
  if mode != 'prepare' and not workdir:
    raise errors.UsageError(f'--mode={mode} needs --workdir=DIR')
  config = _mode_config(mode, workdir)
  if config is not None:
    distributed.maybe_initialize(config.distributed)
  if mode in _SIGTERM_INTERRUPTS:
    signal.signal(signal.SIGTERM, _interrupt)
  # Only the mode that runs is imported: each loads what it needs (TensorFlow, uvicorn).
  mode_module = importlib.import_module(f'flax_inpaint.modes.{MODE_MODULES[mode]}')
  mode_module.main(config, workdir, FLAGS)


# The exception types that are the user's to fix: one line, exit status 2.
USER_ERRORS = (
    errors.UsageError,
    app.UsageError,
    errors.ConfigError,
    errors.CheckpointError,
    errors.WeightsError,
    errors.ImageFileError,
    errors.ExportError,
    errors.ServeError,
    FileNotFoundError,
)


def _fail(message, status):
  print(f'error: {message}', file=sys.stderr)
  sys.exit(status)


def _interrupt(signum, frame):
  del signum, frame
  raise KeyboardInterrupt


# Modes that stop on SIGTERM as on Ctrl-C (training saves a checkpoint on either; uvicorn
# shuts the server down on either).
_SIGTERM_INTERRUPTS = ('eval', 'inpaint', 'export', 'prepare')


def run_app(main_fn, argv, flags_parser=command_line.parse_config_flags):
  """app.run(main_fn) with a quiet console; a user error is one line on stderr and exit
  status 2, a diverged run one line and exit status 3."""

  def quiet_main(rest):
    quiet_console()
    return main_fn(rest)

  try:
    app.run(quiet_main, argv=argv, flags_parser=flags_parser)
  except errors.DivergedError as e:
    _fail(e, errors.DIVERGED_STATUS)
  except errors.Interrupted as e:
    print(e, file=sys.stderr)
    sys.exit(errors.INTERRUPTED_STATUS)
  except KeyboardInterrupt:
    print('interrupted: nothing half-written was kept; rerun the same command', file=sys.stderr)
    sys.exit(errors.INTERRUPTED_STATUS)
  except USER_ERRORS as e:
    _fail(e, errors.USAGE_ERROR_STATUS)


def run(argv=None):
  """Entry point of main.py and of the `flax-inpaint` console command."""
  argv = list(sys.argv if argv is None else argv)
  define_flags()
  if len(argv) == 1:  # No mode, no flag: the modes, as --help lists them; a usage error.
    print(help_text(argv))
    sys.exit(errors.USAGE_ERROR_STATUS)
  try:
    if _maybe_print_help(argv):
      sys.exit(0)
  except errors.UsageError as e:
    _fail(e, errors.USAGE_ERROR_STATUS)
  run_app(main, argv, flags_parser=parse_flags)
