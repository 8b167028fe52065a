"""One process of the multi-process tests.

python tests/distributed_worker.py PROCESS_ID NUM_PROCESSES PORT OUT.npz
  3 train steps of configs/test.py, params saved (NUM_PROCESSES=1: no jax.distributed,
  the reference).
python tests/distributed_worker.py PROCESS_ID NUM_PROCESSES PORT WORKDIR --loop
  the training loop (loop.run_loop) for up to 100,000 steps in WORKDIR, until a signal.
"""

import os
import sys

os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=1'
os.environ['JAX_PLATFORMS'] = 'cpu'
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax
import numpy as np

from flax_inpaint.config import config_lib
from flax_inpaint.train import distributed
from flax_inpaint.train import loop
from flax_inpaint.train import setup
from flax_inpaint.train import sharding
from flax_inpaint.train import steps
from flax_inpaint.train import validation


def main():
  process_id, num_processes, port, out = (
      int(sys.argv[1]),
      int(sys.argv[2]),
      sys.argv[3],
      sys.argv[4],
  )
  config = config_lib.load_sibling(os.path.join(ROOT, 'configs', 'test.py'), 'test')
  if num_processes > 1:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    config.distributed.initialize = True
    config.distributed.coordinator_address = f'localhost:{port}'
    config.distributed.num_processes = num_processes
    config.distributed.process_id = process_id
    assert distributed.maybe_initialize(config.distributed)
  assert jax.process_count() == num_processes and jax.device_count() == num_processes
  if '--loop' in sys.argv:
    run_loop_until_signalled(config, out, process_id)
    return
  parts = setup.build(validation.resolve(config))
  mesh, model, tx, vgg_params = parts.mesh, parts.model, parts.tx, parts.vgg_params
  state = steps.create_train_state(model, tx, config.data.image_size, 0, mesh)
  step = steps.make_train_step(model, tx, parts.config, mesh)
  rng = np.random.default_rng(0)
  local = sharding.local_batch_size(config.train.batch_size)
  for _ in range(3):
    images = rng.integers(0, 256, (config.train.batch_size, 32, 32, 3), np.uint8)
    rows = images[process_id * local : (process_id + 1) * local]  # This process's shard.
    state, _ = step(state, sharding.global_batch(rows, mesh), vgg_params, jax.random.key(0))
  leaves = jax.tree.leaves(state.params)
  np.savez(out, *[np.asarray(x.addressable_data(0)) for x in leaves])
  if num_processes > 1:
    jax.distributed.shutdown()


def run_loop_until_signalled(config, workdir, process_id):
  config.train.num_steps = 100_000
  config.train.checkpoint_every = 100_000
  config.train.log_every = 5
  local = sharding.local_batch_size(config.train.batch_size)
  rng = np.random.default_rng(process_id)
  batches = (rng.integers(0, 256, (local, 32, 32, 3), np.uint8) for _ in range(10**6))
  started = f'{workdir}.started{process_id}'
  hooks = [lambda step: open(started, 'w').close() if step == 10 else None]
  parts = setup.build(validation.resolve(config))
  state = loop.run_loop(
      parts,
      setup.initial_state(parts, workdir),
      workdir,
      train_batches=batches,
      writer=loop.LogOnlyWriter(),
      hooks=hooks,
  )
  print(f'process {process_id} stopped at step {int(state.step)}', flush=True)
  jax.distributed.shutdown()


if __name__ == '__main__':
  main()
