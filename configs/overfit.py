"""The seed's overfit test: one batch of 8 photos, the same holes every step.

The README demo. The small U-Net costs ~100 GFLOP per training image at 256x256, too
much for a laptop CPU, so the demo trains at 64x64 (3 to 3.5 minutes on our 2-core
development box, 5.5 on another 2-core machine: BENCHMARKS.md, The README demo):
  python main.py --config=configs/overfit.py --workdir=/tmp/overfit
The seed's experiment at full size, on a GPU:
  python main.py --config=configs/overfit.py --workdir=/tmp/overfit --config.data.image_size=256
"""

from flax_inpaint.config import schema


def get_config():
  config = schema.get_config()
  config.model.size = 'small'
  config.train.lr = 1e-3  # The seed's lr search: 1e-3 is best on one batch.
  config.train.batch_size = 8
  config.train.num_steps = 600
  config.train.checkpoint_every = 200
  config.train.log_every = 50
  config.train.sample_every = 200
  config.train.num_sample_images = 8  # The whole overfit batch in the grids and PSNR.
  config.data.source = 'samples'  # scikit-image's 8 colour photos.
  config.data.image_size = 64
  config.data.random_flip = False  # The same batch every step.
  # At 64x64 four 32x32 squares would cover most of the image: keep the seed's
  # hole fraction (4 x 32^2 / 256^2 = 6%) with 4 x 8x8 holes.
  config.masks.patch_size = 8
  config.masks.fixed = True
  config.loss.require_vgg = False  # Offline without weights: train without the term.
  config.eval.num_images = 8
  config.eval.batch_size = 8
  return config
