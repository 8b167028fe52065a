"""One process of the multi-process test: 3 train steps of configs/test.py, params saved.

  python tests/distributed_worker.py PROCESS_ID NUM_PROCESSES PORT OUT.npz
NUM_PROCESSES=1 runs without jax.distributed (the reference).
"""

import os
import sys

os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=1'
os.environ['JAX_PLATFORMS'] = 'cpu'
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from configs import test  # pylint: disable=g-import-not-at-top
from flax_inpaint import distributed  # pylint: disable=g-import-not-at-top
from flax_inpaint import models  # pylint: disable=g-import-not-at-top
from flax_inpaint import sharding  # pylint: disable=g-import-not-at-top
from flax_inpaint import steps  # pylint: disable=g-import-not-at-top
from flax_inpaint import train  # pylint: disable=g-import-not-at-top


def main():
  process_id, num_processes, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
  config = test.get_config()
  if num_processes > 1:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    config.distributed.initialize = True
    config.distributed.coordinator_address = f'localhost:{port}'
    config.distributed.num_processes = num_processes
    config.distributed.process_id = process_id
    assert distributed.maybe_initialize(config.distributed)
  assert jax.process_count() == num_processes and jax.device_count() == num_processes
  mesh = sharding.make_mesh()
  model = models.create_model(config.model)
  tx = steps.make_optimizer(config.train)
  vgg_params, loss_config = train.load_vgg_params(config.loss)
  state = steps.create_train_state(model, tx, config.data.image_size, 0, mesh)
  step = steps.make_train_step(model, tx, loss_config, config.masks, mesh)
  rng = np.random.default_rng(0)
  local = sharding.local_batch_size(config.train.batch_size)
  for _ in range(3):
    images = rng.integers(0, 256, (config.train.batch_size, 32, 32, 3), np.uint8)
    rows = images[process_id * local:(process_id + 1) * local]  # This process's shard.
    state, _ = step(state, sharding.global_batch(rows, mesh), vgg_params, jax.random.key(0))
  leaves = jax.tree.leaves(state.params)
  np.savez(out, *[np.asarray(x.addressable_data(0)) for x in leaves])
  if num_processes > 1:
    jax.distributed.shutdown()


if __name__ == '__main__':
  main()
