"""The seed's learning-rate search on the overfit batch: 4 short runs, same data/masks.

  python main.py --mode=lr_sweep --config=configs/lr_sweep.py --workdir=/tmp/lr_sweep
Writes lr_sweep.png (loss curves) and lr_sweep.md (final losses) in the workdir.
"""

from flax_inpaint.config import config_lib


def get_config():
  config = config_lib.load_sibling(__file__, 'overfit')
  config.sweep.lrs = (1e-4, 3e-4, 1e-3, 3e-3)
  config.train.num_steps = 150  # Short runs: enough to rank the rates on one batch.
  config.train.checkpoint_every = 150
  config.train.sample_every = 150
  config.train.log_every = 10
  return config
