"""The seed's final model trained with the loss of Liu et al. 2018 (partial convolutions):
L1 with valid 1 / hole 6, perceptual 0.05 and style 120 on prediction and composite, TV 0.1.

A preset is a config file, so anything set on the command line wins over it:
  python main.py --config=configs/pconv.py --workdir=/tmp/pconv --config.data.data_dir=~/tfds
  python main.py --config=configs/pconv.py --workdir=/tmp/pconv --config.loss.style_weight=0
"""

from flax_inpaint.config import config_lib


def get_config():
  config = config_lib.load_sibling(__file__, 'full')
  config.loss.l1_weight = 1.0
  config.loss.l2_weight = 0.0
  config.loss.valid_weight = 1.0
  config.loss.hole_weight = 6.0
  config.loss.perceptual_weight = 0.05
  config.loss.style_weight = 120.0
  config.loss.tv_weight = 0.1
  config.loss.perceptual_on_composite = True
  return config
