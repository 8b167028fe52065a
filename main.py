"""flax_inpaint command line.

  python main.py --config=configs/full.py --workdir=DIR [--config.train.lr=1e-3]
  python main.py --mode=eval --config=configs/full.py --workdir=DIR
  python main.py --mode=prepare --config=configs/full.py \
      --config.data.manual_dir=KAGGLE --config.data.data_dir=TFDS_DIR
  python main.py --mode=inpaint --config=... --workdir=DIR --input=X --mask=M --output=OUT
  python main.py --mode=lr_sweep --config=configs/lr_sweep.py --workdir=DIR
"""

import logging as py_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

# TensorFlow only feeds data: keep it off the GPU (input_pipeline also hides GPUs).
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Path to a config file (configs/*.py).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Checkpoints, TensorBoard events, samples, eval.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'prepare', 'inpaint', 'lr_sweep'],
                  'What to do.')
flags.DEFINE_string('input', None, '--mode=inpaint: an image file or a folder of images.')
flags.DEFINE_string('mask', None, '--mode=inpaint: mask file or folder (non-zero = hole); '
                    'omitted: the image alpha channel.')
flags.DEFINE_string('output', None, '--mode=inpaint: output folder.')
flags.mark_flags_as_required(['config'])


class _QuietLibraries(py_logging.Filter):
  """Drops orbax's per-save INFO chatter; its warnings and errors still show."""

  def filter(self, record):
    return record.levelno >= py_logging.WARNING or 'orbax' not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(_QuietLibraries())
  config = FLAGS.config
  from flax_inpaint import distributed  # pylint: disable=g-import-not-at-top
  distributed.maybe_initialize(config.distributed)
  if FLAGS.mode == 'prepare':
    from flax_inpaint import input_pipeline  # pylint: disable=g-import-not-at-top
    summary = input_pipeline.prepare(config)
    print(f"album_covers prepared in {config.data.data_dir}: "
          + ', '.join(f'{k} {v}' for k, v in summary['splits'].items())
          + f"; skipped {summary['skipped']} files")
    return
  if not FLAGS.workdir:
    raise app.UsageError('--workdir is required')
  if FLAGS.mode == 'train':
    from flax_inpaint import train  # pylint: disable=g-import-not-at-top
    train.train_and_evaluate(config, FLAGS.workdir)
  elif FLAGS.mode == 'eval':
    from flax_inpaint import run_eval  # pylint: disable=g-import-not-at-top
    results = run_eval.run(config, FLAGS.workdir)
    logging.info('eval: %s', results)
  elif FLAGS.mode == 'inpaint':
    from flax_inpaint import inpaint  # pylint: disable=g-import-not-at-top
    if not FLAGS.input or not FLAGS.output:
      raise app.UsageError('--mode=inpaint needs --input and --output (and --mask)')
    inpaint.run(config, FLAGS.workdir, FLAGS.input, FLAGS.mask, FLAGS.output)
  elif FLAGS.mode == 'lr_sweep':
    from flax_inpaint import lr_sweep  # pylint: disable=g-import-not-at-top
    lr_sweep.run(config, FLAGS.workdir)


if __name__ == '__main__':
  # A bad config is a usage error: one clear line, no traceback.
  from flax_inpaint import config_validation  # pylint: disable=g-import-not-at-top
  from flax_inpaint import inpaint as inpaint_lib  # pylint: disable=g-import-not-at-top
  from flax_inpaint import vgg  # pylint: disable=g-import-not-at-top
  try:
    app.run(main)
  except (config_validation.ConfigError, FileNotFoundError, vgg.WeightsError,
          inpaint_lib.InpaintError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
