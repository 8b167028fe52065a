"""The command line: `python main.py --mode=MODE ...` or, installed, `flax-inpaint MODE ...`.

  flax-inpaint train --config=configs/full.py --workdir=DIR [--config.train.lr=1e-3]
  flax-inpaint eval --workdir=DIR                  (the run's own config.json)
  flax-inpaint inpaint --workdir=DIR --input=IMG_OR_DIR [--mask=MASK_OR_DIR] --output=OUT
  flax-inpaint serve --workdir=DIR [--host=127.0.0.1] [--port=8765]
  flax-inpaint export --workdir=DIR --output=FILE
  flax-inpaint prepare --config=configs/full.py --config.data.manual_dir=KAGGLE \
      --config.data.data_dir=TFDS_DIR
  flax-inpaint lr_sweep --config=configs/lr_sweep.py --workdir=DIR

Each mode is a leaf module; this file only parses flags and dispatches. A user error
(bad flag or config field, missing file, bad image) is one line on stderr and exit
status 2; a run that diverged is one line and exit status 3.
"""

import difflib
import logging as py_logging
import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

# TensorFlow only feeds data: keep it quiet (input_pipeline also hides GPUs from it).
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

MODES = ('train', 'eval', 'prepare', 'inpaint', 'serve', 'export', 'lr_sweep')
# Modes that read a trained workdir: without --config they use WORKDIR/config.json.
TRAINED_MODES = ('eval', 'inpaint', 'serve', 'export')
USAGE_ERROR, DIVERGED = 2, 3

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'A config file (configs/*.py). Optional for '
                                'eval, inpaint, serve and export: WORKDIR/config.json.',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Checkpoints, config.json, TensorBoard events, eval.')
flags.DEFINE_enum('mode', 'train', MODES, 'What to do.')
flags.DEFINE_string('input', None, 'inpaint: an image file or a folder of images.')
flags.DEFINE_string('mask', None, 'inpaint: mask file or folder (holes where the mask is >= '
                    '--mask_threshold); omitted: the image alpha channel.')
flags.DEFINE_integer('mask_threshold', 128, 'inpaint: mask pixels >= this are holes.')
flags.DEFINE_string('output', None, 'inpaint: output folder; export: output file.')
flags.DEFINE_bool('overwrite', False, 'inpaint: allow replacing existing files.')
flags.DEFINE_string('host', '127.0.0.1', 'serve: address to bind (local only by default).')
flags.DEFINE_integer('port', 8765, 'serve: port.')


class UsageError(ValueError):
  """A bad command line, reported in one line."""


class _QuietLibraries(py_logging.Filter):
  """Drops orbax's per-save INFO chatter; its warnings and errors still show."""

  def filter(self, record):
    return record.levelno >= py_logging.WARNING or 'orbax' not in record.pathname


def _config_flag_error(argv, error) -> str:
  """One line for a --config.* override that failed to parse: the unknown field with a
  suggestion, or the bad value."""
  from flax_inpaint import defaults  # pylint: disable=g-import-not-at-top
  for arg in argv:
    if not arg.startswith('--config.'):
      continue
    path = arg[len('--config.'):].split('=', 1)[0].split('.')
    node, walked = defaults.get_config(), 'config'
    for name in path:
      if not hasattr(node, 'keys') or name not in node:
        close = difflib.get_close_matches(name, list(node.keys()) if hasattr(node, 'keys')
                                          else [], n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ''
        return (f'{arg}: {walked} has no field {name!r}{hint}; flax_inpaint/defaults.py '
                'lists every field')
      node, walked = node[name], f'{walked}.{name}'
  return str(error).splitlines()[0]


def parse_flags(argv):
  """absl flag parsing, with one-line errors for bad flags and config overrides."""
  if len(argv) > 1 and argv[1] in MODES:  # `flax-inpaint serve ...` == `--mode=serve`.
    argv = [argv[0], f'--mode={argv[1]}'] + argv[2:]
  try:
    rest = FLAGS(argv)
    FLAGS.config  # pylint: disable=pointless-statement  # Loads the file and overrides now.
  except (KeyError, AttributeError, flags.Error) as e:
    raise UsageError(_config_flag_error(argv, e)) from e
  except OSError as e:  # ml_collections' failure to load the config file.
    missing = re.search(r"No such file or directory: '([^']+)'", str(e))
    raise UsageError(f'--config={missing.group(1)}: no such config file' if missing
                     else str(e).splitlines()[0]) from e
  return rest


def main(argv):
  if len(argv) > 1:
    raise UsageError(f'unexpected arguments {argv[1:]}: modes are {", ".join(MODES)}')
  logging.get_absl_handler().addFilter(_QuietLibraries())
  mode, config, workdir = FLAGS.mode, FLAGS.config, FLAGS.workdir
  if config is None and mode not in TRAINED_MODES:
    raise UsageError(f'--mode={mode} needs --config=FILE (e.g. configs/full.py)')
  if mode != 'prepare' and not workdir:
    raise UsageError(f'--mode={mode} needs --workdir=DIR')
  if config is not None:
    from flax_inpaint import distributed  # pylint: disable=g-import-not-at-top
    distributed.maybe_initialize(config.distributed)
  if mode == 'prepare':
    from flax_inpaint import input_pipeline  # pylint: disable=g-import-not-at-top
    summary = input_pipeline.prepare(config)
    print(f"album_covers prepared in {config.data.data_dir}: "
          + ', '.join(f'{k} {v}' for k, v in summary['splits'].items())
          + f"; skipped {summary['skipped']} files")
  elif mode == 'train':
    from flax_inpaint import train  # pylint: disable=g-import-not-at-top
    train.train_and_evaluate(config, workdir)
  elif mode == 'lr_sweep':
    from flax_inpaint import train  # pylint: disable=g-import-not-at-top
    train.lr_sweep(config, workdir)
  elif mode == 'eval':
    from flax_inpaint import evaluate  # pylint: disable=g-import-not-at-top
    evaluate.run(config, workdir)
  elif mode == 'inpaint':
    if not FLAGS.input or not FLAGS.output:
      raise UsageError('--mode=inpaint needs --input=IMAGE_OR_FOLDER and --output=FOLDER '
                       '(and --mask=MASK_OR_FOLDER unless the images have alpha holes)')
    from flax_inpaint import inpaint  # pylint: disable=g-import-not-at-top
    failed = inpaint.run(config, workdir, FLAGS.input, FLAGS.mask, FLAGS.output,
                         mask_threshold=FLAGS.mask_threshold, overwrite=FLAGS.overwrite)
    if failed:
      sys.exit(USAGE_ERROR)
  elif mode == 'serve':
    from flax_inpaint import serve  # pylint: disable=g-import-not-at-top
    try:
      serve.serve(config, workdir, host=FLAGS.host, port=FLAGS.port)
    except serve.ServeError as e:  # A taken port, an address that cannot be bound.
      raise UsageError(str(e)) from e
  elif mode == 'export':
    if not FLAGS.output:
      raise UsageError('--mode=export needs --output=FILE')
    from flax_inpaint import export  # pylint: disable=g-import-not-at-top
    export.run(config, workdir, FLAGS.output)


def _user_errors():
  """The exception types that are the user's to fix: one line, exit status 2."""
  from flax_inpaint import checkpointing  # pylint: disable=g-import-not-at-top
  from flax_inpaint import config_lib  # pylint: disable=g-import-not-at-top
  from flax_inpaint import exported  # pylint: disable=g-import-not-at-top
  from flax_inpaint import image_files  # pylint: disable=g-import-not-at-top
  from flax_inpaint import vgg  # pylint: disable=g-import-not-at-top
  return (UsageError, app.UsageError, config_lib.ConfigError, checkpointing.CheckpointError,
          vgg.WeightsError, image_files.ImageFileError, exported.ExportError,
          FileNotFoundError)


def run(argv=None):
  """Entry point of main.py and of the `flax-inpaint` console command."""
  argv = list(sys.argv if argv is None else argv)
  try:
    app.run(main, argv=argv, flags_parser=parse_flags)
  except UsageError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(USAGE_ERROR)
  except Exception as e:  # pylint: disable=broad-except
    from flax_inpaint import loop  # pylint: disable=g-import-not-at-top
    if isinstance(e, loop.DivergedError):
      print(f'error: {e}', file=sys.stderr)
      sys.exit(DIVERGED)
    if isinstance(e, _user_errors()):
      print(f'error: {e}', file=sys.stderr)
      sys.exit(USAGE_ERROR)
    raise
