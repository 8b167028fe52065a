"""Multi-host start-up: jax.distributed.initialize from flags, config or the cluster."""

import os

from absl import logging
import jax

CLUSTER_VARIABLES = ('SLURM_JOB_ID', 'OMPI_COMM_WORLD_SIZE', 'JAX_COORDINATOR_ADDRESS')


def maybe_initialize(distributed_config) -> bool:
  """Calls jax.distributed.initialize when configured or when a cluster is detected.

  `config.distributed.initialize`: True always, False never, None (default) when one of
  SLURM / Open MPI / JAX_COORDINATOR_ADDRESS is in the environment. Explicit coordinator,
  process count and id override what JAX detects.
  """
  wanted = distributed_config.initialize
  if wanted is None:
    wanted = any(v in os.environ for v in CLUSTER_VARIABLES) or bool(
        distributed_config.coordinator_address)
  if not wanted:
    return False
  kwargs = {}
  if distributed_config.coordinator_address:
    kwargs['coordinator_address'] = distributed_config.coordinator_address
  if distributed_config.num_processes is not None:
    kwargs['num_processes'] = distributed_config.num_processes
  if distributed_config.process_id is not None:
    kwargs['process_id'] = distributed_config.process_id
  jax.distributed.initialize(**kwargs)
  logging.info('jax.distributed: process %d of %d, %d local / %d global devices',
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
  return True
