"""The reference workload of BENCHMARKS.md (issue 6): the seed's final model at 256x256,
global batch 64, 4 random 32x32 holes, L1 + 0.05 perceptual (pred and composite) + 0.1 TV,
Adam 3e-4. Time it with
  python -m flax_inpaint.benchmark --config=configs/reference.py --config.model.dtype=bfloat16
"""

from flax_inpaint.config import config_lib


def get_config():
  config = config_lib.load_sibling(__file__, 'full')
  config.train.batch_size = 64
  config.data.image_size = 256
  config.loss.vgg_weights = 'random'  # Timing does not depend on the weights' values.
  return config
