"""The seed's final model: dilated bottleneck, no batch norm, L1 + perceptual + TV.

20k training images of the prepared album_covers set at 256x256, lr 3e-4 (the seed's
lr search). Prepare the data once, then train (on a GPU):
  python main.py --mode=prepare --config=configs/full.py \
      --config.data.manual_dir=~/Downloads/album-covers --config.data.data_dir=~/tfds
  python main.py --config=configs/full.py --workdir=/tmp/full --config.data.data_dir=~/tfds
"""

from flax_inpaint.config import schema


def get_config():
  config = schema.get_config()
  config.model.size = 'small'
  config.model.bottleneck = 'dilated'
  config.model.norm = 'none'
  config.train.lr = 3e-4
  config.train.batch_size = 32
  # 20k images / 32 = 625 steps per epoch: 40k steps is 64 epochs.
  config.train.num_steps = 40_000
  config.data.source = 'album_covers'
  config.data.train_split = 'train[:20000]'
  config.loss.l1_weight = 1.0
  config.loss.perceptual_weight = 0.05
  config.loss.tv_weight = 0.1
  config.loss.require_vgg = True
  return config
