"""Trains on a folder of images and evaluates, without TensorFlow or clu.

For a bare JAX GPU image (no TF): host batches come from PIL-decoded images held in
memory, the loop is `train.run_loop` (orbax checkpoints, samples), then `--mode=eval`'s
`run_eval.run` on eval.dir. Usage:
  python scripts/gpu_train_eval.py --config=configs/full.py --workdir=W \
      --config.data.dir=TRAIN_DIR --config.eval.dir=VAL_DIR
"""

import sys
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
from ml_collections import config_flags

from flax_inpaint import images as images_lib
from flax_inpaint import run_eval
from flax_inpaint import sharding
from flax_inpaint import train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file.')
flags.DEFINE_string('workdir', None, 'Workdir.')


def host_batches(all_images, batch, seed, flip):
  rng = np.random.default_rng(seed)
  while True:
    batch_images = all_images[rng.integers(0, len(all_images), batch)]
    if flip:
      flips = rng.random(batch) < 0.5
      batch_images = np.where(flips[:, None, None, None], batch_images[:, :, ::-1], batch_images)
    yield batch_images


def main(argv):
  del argv
  config = FLAGS.config
  files = images_lib.list_image_files(config.data.dir)
  all_images = np.stack([images_lib.load(f, size=config.data.image_size) for f in files])
  print(f'loaded {len(all_images)} training images', flush=True)
  train.setup_compilation_cache(config.compilation_cache_dir)
  vgg_params, loss_config = train.load_vgg_params(config.loss)
  mesh = sharding.make_mesh()
  train.run_loop(config, FLAGS.workdir, mesh=mesh,
                 train_batches=host_batches(all_images, config.train.batch_size,
                                            config.train.seed, config.data.random_flip),
                 writer=train.LogOnlyWriter(),
                 sample_images=all_images[:4], vgg_params=vgg_params,
                 loss_config=loss_config)
  print(run_eval.run(config, FLAGS.workdir), flush=True)


if __name__ == '__main__':
  app.run(main)
