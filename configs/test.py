"""Tiny configuration for CPU tests: runs in seconds. For testing only.

python main.py --config=configs/test.py --workdir=/tmp/t --config.data.dir=IMAGES
"""

from flax_inpaint.config import schema


def get_config():
  config = schema.get_config()
  config.model.size = 'tiny'  # Widths 4-8: for tests only.
  config.train.batch_size = 4
  config.train.num_steps = 4
  config.train.checkpoint_every = 2
  config.train.log_every = 2
  config.train.sample_every = 2
  config.train.num_sample_images = 2
  config.data.source = 'samples'
  config.data.image_size = 32
  config.masks.patch_size = 8
  config.masks.num_patches = 2
  config.loss.vgg_weights = 'random'  # No download in tests: a random VGG.
  config.loss.perceptual_layers = ('relu1_2', 'relu2_2')
  config.loss.perceptual_layer_weights = (1.0, 1.0)
  config.eval.num_images = 4
  config.inpaint.crop_margin = 8  # 64 px at 256, scaled to the 32 px images.
  config.eval.batch_size = 4
  config.data.shuffle_buffer = 16
  config.compilation_cache_dir = ''
  return config
